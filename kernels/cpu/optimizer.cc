// The optimizer ops of ONNX's ai.onnx.preview.training domain: Adagrad,
// Momentum and Adam over any number of tensors, as the spec writes them,
// computed in double. (amp's own compiled steps express their optimizer in
// standard ops; these let amp run models that use the preview ops.)
#include <algorithm>
#include <atomic>
#include <cmath>
#include <optional>

#include "kernels/cpu/families.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/scalar_math.h"

namespace amp::cpu {
namespace {

std::vector<double> ToDouble(const TensorRef& t) {
  std::vector<double> out(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) out[i] = ReadDouble(t, i);
  return out;
}

void Write(const std::vector<double>& v, TensorRef& t) {
  std::vector<float> f(v.begin(), v.end());
  if (t.dtype == DType::kFloat64) {
    std::copy(v.begin(), v.end(), t.as<double>());
  } else {
    FromFloat(f, t);
  }
}

Status AdagradKernel(KernelContext& ctx) {
  size_t n = (ctx.inputs.size() - 2) / 3;
  double r = ReadDouble(ctx.in(0), 0);
  double t = static_cast<double>(ReadInt(ctx.in(1), 0));
  double decay = ctx.node.GetFloat("decay_factor", 0.f);
  double eps = ctx.node.GetFloat("epsilon", 0.f);
  double norm = ctx.node.GetFloat("norm_coefficient", 0.f);
  double lr = r / (1 + t * decay);
  for (size_t k = 0; k < n; ++k) {
    std::vector<double> x = ToDouble(ctx.in(2 + k)), g = ToDouble(ctx.in(2 + n + k)),
                        h = ToDouble(ctx.in(2 + 2 * n + k));
    for (size_t i = 0; i < x.size(); ++i) {
      double gr = norm * x[i] + g[i];
      h[i] += gr * gr;
      x[i] -= lr * gr / (std::sqrt(h[i]) + eps);
    }
    Write(x, ctx.out(k));
    Write(h, ctx.out(n + k));
  }
  return Status::Ok();
}

Status MomentumKernel(KernelContext& ctx) {
  size_t n = (ctx.inputs.size() - 2) / 3;
  double r = ReadDouble(ctx.in(0), 0);
  int64_t t = ReadInt(ctx.in(1), 0);
  double alpha = ctx.node.GetFloat("alpha", 0.f);
  double beta = ctx.node.GetFloat("beta", 0.f);
  double norm = ctx.node.GetFloat("norm_coefficient", 0.f);
  bool nesterov = ctx.node.GetString("mode", "standard") == "nesterov";
  double beta_adj = t > 0 ? beta : 1.0;
  for (size_t k = 0; k < n; ++k) {
    std::vector<double> x = ToDouble(ctx.in(2 + k)), g = ToDouble(ctx.in(2 + n + k)),
                        v = ToDouble(ctx.in(2 + 2 * n + k));
    for (size_t i = 0; i < x.size(); ++i) {
      double gr = norm * x[i] + g[i];
      v[i] = alpha * v[i] + beta_adj * gr;
      x[i] -= nesterov ? r * (gr + alpha * v[i]) : r * v[i];
    }
    Write(x, ctx.out(k));
    Write(v, ctx.out(n + k));
  }
  return Status::Ok();
}

Status AdamKernel(KernelContext& ctx) {
  size_t n = (ctx.inputs.size() - 2) / 4;
  double r = ReadDouble(ctx.in(0), 0);
  double t = static_cast<double>(ReadInt(ctx.in(1), 0));
  double alpha = ctx.node.GetFloat("alpha", 0.9f);
  double beta = ctx.node.GetFloat("beta", 0.999f);
  double eps = ctx.node.GetFloat("epsilon", 0.f);  // the spec's default
  double norm = ctx.node.GetFloat("norm_coefficient", 0.f);
  double norm_post = ctx.node.GetFloat("norm_coefficient_post", 0.f);
  double lr = t > 0 ? r * std::sqrt(1 - std::pow(beta, t)) / (1 - std::pow(alpha, t)) : r;
  for (size_t k = 0; k < n; ++k) {
    std::vector<double> x = ToDouble(ctx.in(2 + k)), g = ToDouble(ctx.in(2 + n + k)),
                        v = ToDouble(ctx.in(2 + 2 * n + k)), h = ToDouble(ctx.in(2 + 3 * n + k));
    for (size_t i = 0; i < x.size(); ++i) {
      double gr = norm * x[i] + g[i];
      v[i] = alpha * v[i] + (1 - alpha) * gr;
      h[i] = beta * h[i] + (1 - beta) * gr * gr;
      x[i] = (1 - norm_post) * (x[i] - lr * v[i] / (std::sqrt(h[i]) + eps));
    }
    Write(x, ctx.out(k));
    Write(v, ctx.out(n + k));
    Write(h, ctx.out(2 * n + k));
  }
  return Status::Ok();
}

// ai.amp FusedAdam: the optimizer pass's Adam/AdamW for every parameter in
// one kernel, FP32, in the standard ops' exact operation order.
Status FusedAdamKernel(KernelContext& ctx) {
  size_t n = (ctx.inputs.size() - 3) / 4;
  float lr = static_cast<float>(ReadDouble(ctx.in(0), 0));
  float step1 = static_cast<float>(ReadDouble(ctx.in(1), 0)) + 1.0f;
  bool skip = ctx.has_input(2) && ReadInt(ctx.in(2), 0) != 0;
  float b1 = ctx.node.GetFloat("beta1", 0.9f), b2 = ctx.node.GetFloat("beta2", 0.999f);
  float eps = ctx.node.GetFloat("eps", 1e-8f), wd = ctx.node.GetFloat("weight_decay", 0.f);
  bool decoupled = ctx.node.GetInt("decoupled", 0) != 0;
  float omb1 = static_cast<float>(1.0 - static_cast<double>(b1));
  float omb2 = static_cast<float>(1.0 - static_cast<double>(b2));
  float bc1 = 1.0f - PowF(b1, step1);
  float bc2_sqrt = std::sqrt(1.0f - PowF(b2, step1));
  float step_size = lr / bc1;
  float decay = decoupled && wd != 0 ? 1.0f - lr * wd : 1.0f;
  for (size_t k = 0; k < n; ++k) {
    const TensorRef &p = ctx.in(3 + k), &g = ctx.in(3 + n + k), &m = ctx.in(3 + 2 * n + k),
                    &v = ctx.in(3 + 3 * n + k);
    for (const TensorRef* t : {&p, &g, &m, &v})
      if (t->dtype != DType::kFloat32 || t->numel() != p.numel())
        return ctx.Error("parameter ", k, ": every tensor must be float32 of one size");
    const float *pp = p.as<float>(), *pg = g.as<float>(), *pm = m.as<float>(), *pv = v.as<float>();
    float *op = ctx.out(k).as<float>(), *om = ctx.out(n + k).as<float>(),
          *ov = ctx.out(2 * n + k).as<float>();
    // Elements are independent: the threads split each tensor.
    ParallelFor(p.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        if (skip) {
          op[i] = pp[i];
          om[i] = pm[i];
          ov[i] = pv[i];
          continue;
        }
        float gr = pg[i];
        if (!decoupled && wd != 0) gr = gr + pp[i] * wd;
        float m1 = pm[i] * b1 + gr * omb1;
        float v1 = pv[i] * b2 + (gr * gr) * omb2;
        float base = decoupled && wd != 0 ? pp[i] * decay : pp[i];
        float denom = std::sqrt(v1) / bc2_sqrt + eps;
        op[i] = base - (m1 / denom) * step_size;
        om[i] = m1;
        ov[i] = v1;
      }
    });
  }
  return Status::Ok();
}

// ai.amp FusedSgd: the optimizer pass's SGD (weight decay, momentum with
// dampening, Nesterov) for every parameter in one kernel, FP32, in the
// standard ops' exact operation order, including the skip.
Status FusedSgdKernel(KernelContext& ctx) {
  float mom = ctx.node.GetFloat("momentum", 0.f), damp = ctx.node.GetFloat("dampening", 0.f);
  float wd = ctx.node.GetFloat("weight_decay", 0.f);
  bool nesterov = ctx.node.GetInt("nesterov", 0) != 0;
  size_t n = (ctx.inputs.size() - 3) / (mom != 0 ? 3 : 2);
  float lr = static_cast<float>(ReadDouble(ctx.in(0), 0));
  bool first = damp != 0 && ReadDouble(ctx.in(1), 0) == 0.0;  // PyTorch: the first buffer is g
  bool skip = ctx.has_input(2) && ReadInt(ctx.in(2), 0) != 0;
  float omd = static_cast<float>(1.0 - static_cast<double>(damp));
  for (size_t k = 0; k < n; ++k) {
    const TensorRef &p = ctx.in(3 + k), &g = ctx.in(3 + n + k);
    const TensorRef* buf = mom != 0 ? &ctx.in(3 + 2 * n + k) : nullptr;
    for (const TensorRef* t : {&p, &g, buf})
      if (t && (t->dtype != DType::kFloat32 || t->numel() != p.numel()))
        return ctx.Error("parameter ", k, ": every tensor must be float32 of one size");
    const float *pp = p.as<float>(), *pg = g.as<float>();
    const float* pb = buf ? buf->as<float>() : nullptr;
    float* op = ctx.out(k).as<float>();
    float* ob = buf ? ctx.out(n + k).as<float>() : nullptr;
    ParallelFor(p.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        if (skip) {
          op[i] = pp[i];
          if (ob) ob[i] = pb[i];
          continue;
        }
        float gr = pg[i];
        if (wd != 0) gr = gr + pp[i] * wd;
        float dir = gr;
        if (pb) {
          float next = first ? gr : pb[i] * mom + gr * omd;
          ob[i] = next;
          dir = nesterov ? gr + next * mom : next;
        }
        op[i] = pp[i] - dir * lr;
      }
    });
  }
  return Status::Ok();
}

// ai.amp AnyNonFinite: whether an element of any input is NaN or infinite.
Status AnyNonFiniteKernel(KernelContext& ctx) {
  bool any = false;
  for (size_t k = 0; k < ctx.inputs.size() && !any; ++k) {
    const TensorRef& t = ctx.in(k);
    if (!IsFloat(t.dtype)) return ctx.Error("input ", k, " must be a float tensor");
    any = FirstNonFinite(t.data, t.dtype, t.numel()) >= 0;
  }
  ctx.out(0).as<bool>()[0] = any;
  return Status::Ok();
}

// ai.amp UnscaleCheck: g * (1/S) for every gradient, and whether any result
// is not finite (what loss scaling's Mul-by-zero probes compute).
Status UnscaleCheckKernel(KernelContext& ctx) {
  float inv = static_cast<float>(ReadDouble(ctx.in(0), 0));
  if (ctx.node.GetInt("invert_scale", 0) != 0) inv = 1.0f / inv;  // (Reciprocal's FP32 value)
  size_t n = ctx.inputs.size() - 1;
  bool found = false;
  for (size_t k = 0; k < n; ++k) {
    const TensorRef& g = ctx.in(1 + k);
    if (g.dtype != DType::kFloat32) return ctx.Error("gradients must be float32");
    const float* pg = g.as<float>();
    float* pu = ctx.out(k).as<float>();
    std::atomic<bool> any{false};
    ParallelFor(g.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
      bool bad = false;
      for (int64_t i = begin; i < end; ++i) {
        pu[i] = pg[i] * inv;
        bad = bad || !std::isfinite(pu[i]);
      }
      if (bad) any = true;
    });
    found = found || any;
  }
  *ctx.out(n).as<bool>() = found;
  return Status::Ok();
}

// ai.amp LossScaleUpdate (ops/training.cc): GradScaler's update, each
// step the float32 arithmetic of the ops loss-scaling writes.
Status LossScaleUpdateKernel(KernelContext& ctx) {
  if (ctx.in(0).dtype != DType::kFloat32 || ctx.in(1).dtype != DType::kInt64 ||
      ctx.in(2).dtype != DType::kBool)
    return ctx.Error("reads a float32 scale, an int64 tracker and a bool flag");
  float s = *ctx.in(0).as<float>();
  int64_t tracker = *ctx.in(1).as<int64_t>();
  bool found_inf = *ctx.in(2).as<bool>();
  float growth = ctx.node.GetFloat("growth_factor", 2.0f);
  float backoff = ctx.node.GetFloat("backoff_factor", 0.5f);
  int64_t interval = ctx.node.GetInt("growth_interval", 2000);
  float lo = ctx.node.GetFloat("min_scale", 0.0f), hi = ctx.node.GetFloat("max_scale", 0.0f);
  int64_t clean = tracker + 1;
  bool grow = clean == interval;
  float grown = s * growth;
  float kept_or_grown = grow ? (std::isinf(grown) ? s : grown) : s;
  float next = found_inf ? s * backoff : kept_or_grown;
  if (lo > 0) next = BinaryMath(BinOp::kMax, next, lo);
  if (hi > 0) next = BinaryMath(BinOp::kMin, next, hi);
  if (ctx.has_input(3)) {  // the optimizer's step count, kept on a skipped step
    if (ctx.in(3).dtype != DType::kFloat32) return ctx.Error("reads a float32 step count");
    float step = *ctx.in(3).as<float>();
    *ctx.out(2).as<float>() = found_inf ? step : step + 1.0f;
  }
  *ctx.out(0).as<float>() = next;
  *ctx.out(1).as<int64_t>() = found_inf || grow ? 0 : clean;
  return Status::Ok();
}

}  // namespace

void RegisterOptimizerKernels(KernelTable& t) {
  t["ai.amp:LossScaleUpdate"] = LossScaleUpdateKernel;
  t["ai.amp:UnscaleCheck"] = UnscaleCheckKernel;
  t["ai.amp:AnyNonFinite"] = AnyNonFiniteKernel;
  t["ai.amp:FusedAdam"] = FusedAdamKernel;
  t["ai.amp:FusedSgd"] = FusedSgdKernel;
  t["ai.onnx.preview.training:Adagrad"] = AdagradKernel;
  t["ai.onnx.preview.training:Momentum"] = MomentumKernel;
  t["ai.onnx.preview.training:Adam"] = AdamKernel;
}

}  // namespace amp::cpu
