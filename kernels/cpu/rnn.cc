// Recurrent kernels: RNN, GRU and LSTM forward (layout 0: [seq, batch, ...]),
// any direction, sequence_lens, initial states, peepholes, clip, and the
// spec's activation functions. FP32 arithmetic; one rounding per output.
#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/cpu/families.h"

namespace amp::cpu {
namespace {

enum class Kind { kRnn, kGru, kLstm };

struct Activation {
  std::string name;
  float alpha = 0, beta = 0;
  float operator()(float x) const {
    if (name == "Tanh") return std::tanh(x);
    if (name == "Sigmoid") return 1.f / (1.f + std::exp(-x));
    if (std::isnan(x)) return x;  // every activation: NaN in, NaN out
    if (name == "Relu") return x > 0 ? x : 0.f;
    if (name == "Affine") return alpha * x + beta;
    if (name == "LeakyRelu") return x >= 0 ? x : alpha * x;
    if (name == "ThresholdedRelu") return x > alpha ? x : 0.f;
    if (name == "ScaledTanh") return alpha * std::tanh(beta * x);
    if (name == "HardSigmoid") return std::max(0.f, std::min(1.f, alpha * x + beta));
    if (name == "Elu") return x >= 0 ? x : alpha * (std::exp(x) - 1.f);
    if (name == "Softsign") return x / (1.f + std::abs(x));
    if (name == "Softplus") return std::log1p(std::exp(x));
    return x;
  }
};

// The activations of direction `dir` (the attribute lists them per direction).
StatusOr<std::vector<Activation>> Activations(const KernelContext& ctx, Kind kind, int dir) {
  std::vector<std::string> defaults = kind == Kind::kRnn ? std::vector<std::string>{"Tanh"}
                                      : kind == Kind::kGru
                                          ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                          : std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"};
  size_t per = defaults.size();
  const Attribute* names = ctx.node.FindAttr("activations");
  const Attribute* alphas = ctx.node.FindAttr("activation_alpha");
  const Attribute* betas = ctx.node.FindAttr("activation_beta");
  std::vector<Activation> out(per);
  for (size_t i = 0; i < per; ++i) {
    size_t at = dir * per + i;
    out[i].name = names && at < names->strings.size() ? names->strings[at] : defaults[i];
    // Per-function defaults of alpha/beta (the spec's).
    if (out[i].name == "LeakyRelu") out[i].alpha = 0.01f;
    if (out[i].name == "ThresholdedRelu" || out[i].name == "Elu") out[i].alpha = 1.0f;
    if (out[i].name == "HardSigmoid") out[i].alpha = 0.2f, out[i].beta = 0.5f;
    if (out[i].name == "ScaledTanh" || out[i].name == "Affine") out[i].alpha = 1.f;
    if (alphas && at < alphas->floats.size()) out[i].alpha = alphas->floats[at];
    if (betas && at < betas->floats.size()) out[i].beta = betas->floats[at];
    static const char* known[] = {"Tanh",      "Sigmoid",         "Relu",       "Affine",
                                  "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid",
                                  "Elu",       "Softsign",        "Softplus"};
    bool ok = false;
    for (const char* k : known) ok = ok || out[i].name == k;
    if (!ok) return ctx.Error("activation '", out[i].name, "' is not supported");
  }
  return out;
}

Status Recurrent(KernelContext& ctx, Kind kind) {
  const TensorRef& x = ctx.in(0);
  // layout 1 (batch first) is computed in layout 0 and transposed at the edges.
  bool batch_first = ctx.node.GetInt("layout", 0) != 0;
  int64_t seq = x.dims[batch_first ? 1 : 0], batch = x.dims[batch_first ? 0 : 1],
          in_size = x.dims[2];
  int64_t hidden = ctx.node.GetInt("hidden_size", 0);
  std::string direction = ctx.node.GetString("direction", "forward");
  int dirs = direction == "bidirectional" ? 2 : 1;
  int gates = kind == Kind::kRnn ? 1 : kind == Kind::kGru ? 3 : 4;
  float clip = ctx.node.GetFloat("clip", 0.f);
  bool lbr = ctx.node.GetInt("linear_before_reset", 0) != 0;
  bool input_forget = ctx.node.GetInt("input_forget", 0) != 0;
  // [a, b, c] -> [b, a, c]
  auto swap01 = [](const std::vector<float>& v, int64_t a, int64_t b, int64_t c) {
    std::vector<float> out(v.size());
    for (int64_t i = 0; i < a; ++i)
      for (int64_t j = 0; j < b; ++j)
        for (int64_t k = 0; k < c; ++k) out[(j * a + i) * c + k] = v[(i * b + j) * c + k];
    return out;
  };
  std::vector<float> fx = ToFloat(x), w = ToFloat(ctx.in(1)), r = ToFloat(ctx.in(2));
  if (batch_first) fx = swap01(fx, batch, seq, in_size);
  std::vector<float> b =
      ctx.has_input(3) ? ToFloat(ctx.in(3)) : std::vector<float>(dirs * 2 * gates * hidden, 0.f);
  std::vector<int64_t> lens(batch, seq);
  if (ctx.has_input(4))
    for (int64_t i = 0; i < batch; ++i) lens[i] = ReadInt(ctx.in(4), i);
  std::vector<float> h0 =
      ctx.has_input(5) ? ToFloat(ctx.in(5)) : std::vector<float>(dirs * batch * hidden, 0.f);
  if (batch_first && ctx.has_input(5)) h0 = swap01(h0, batch, dirs, hidden);
  std::vector<float> c0, peep;
  if (kind == Kind::kLstm) {
    c0 = ctx.has_input(6) ? ToFloat(ctx.in(6)) : std::vector<float>(dirs * batch * hidden, 0.f);
    if (batch_first && ctx.has_input(6)) c0 = swap01(c0, batch, dirs, hidden);
    peep = ctx.has_input(7) ? ToFloat(ctx.in(7)) : std::vector<float>(dirs * 3 * hidden, 0.f);
  }
  std::vector<float> y(seq * dirs * batch * hidden, 0.f), yh(dirs * batch * hidden),
      yc(dirs * batch * hidden);
  auto clipped = [clip](float v) {
    return clip > 0 && !std::isnan(v) ? std::max(-clip, std::min(clip, v)) : v;
  };
  for (int dir = 0; dir < dirs; ++dir) {
    AMP_ASSIGN_OR_RETURN(auto act, Activations(ctx, kind, dir));
    bool reverse = direction == "reverse" || dir == 1;
    const float* W = w.data() + dir * gates * hidden * in_size;
    const float* R = r.data() + dir * gates * hidden * hidden;
    const float* Wb = b.data() + dir * 2 * gates * hidden;
    const float* Rb = Wb + gates * hidden;
    for (int64_t n = 0; n < batch; ++n) {
      std::vector<float> h(h0.begin() + (dir * batch + n) * hidden,
                           h0.begin() + (dir * batch + n + 1) * hidden);
      std::vector<float> c;
      if (kind == Kind::kLstm)
        c.assign(c0.begin() + (dir * batch + n) * hidden,
                 c0.begin() + (dir * batch + n + 1) * hidden);
      std::vector<float> xw(gates * hidden), hr(gates * hidden), nh(hidden), nc(hidden);
      for (int64_t step = 0; step < lens[n]; ++step) {
        int64_t t = reverse ? lens[n] - 1 - step : step;
        const float* xt = fx.data() + (t * batch + n) * in_size;
        for (int64_t g = 0; g < gates * hidden; ++g) {
          float a = Wb[g], q = Rb[g];
          for (int64_t k = 0; k < in_size; ++k) a += xt[k] * W[g * in_size + k];
          for (int64_t k = 0; k < hidden; ++k) q += h[k] * R[g * hidden + k];
          xw[g] = a;
          hr[g] = q;
        }
        for (int64_t j = 0; j < hidden; ++j) {
          if (kind == Kind::kRnn) {
            nh[j] = act[0](clipped(xw[j] + hr[j]));
          } else if (kind == Kind::kGru) {
            float z = act[0](clipped(xw[j] + hr[j]));
            float rr = act[0](clipped(xw[hidden + j] + hr[hidden + j]));
            if (!lbr) {
              // (r (.) H) Rh^T needs the whole reset vector: finished below,
              // with z stashed in nh and r in nc.
              nh[j] = z;
              nc[j] = rr;
              continue;
            }
            float hh = act[1](clipped(xw[2 * hidden + j] + rr * hr[2 * hidden + j]));
            nh[j] = (1 - z) * hh + z * h[j];
          } else {
            const float* P = peep.data() + dir * 3 * hidden;
            float i = act[0](clipped(xw[j] + hr[j] + P[j] * c[j]));
            float f =
                act[0](clipped(xw[2 * hidden + j] + hr[2 * hidden + j] + P[2 * hidden + j] * c[j]));
            if (input_forget) f = 1 - i;
            float g = act[1](clipped(xw[3 * hidden + j] + hr[3 * hidden + j]));
            nc[j] = f * c[j] + i * g;
            float o = act[0](clipped(xw[hidden + j] + hr[hidden + j] + P[hidden + j] * nc[j]));
            nh[j] = o * act[2](nc[j]);
          }
        }
        if (kind == Kind::kGru && !lbr) {
          // ht = g(Xt Wh^T + (rt (.) Ht-1) Rh^T + Rbh + Wbh), with z in nh and r in nc.
          std::vector<float> rh(hidden);
          for (int64_t k = 0; k < hidden; ++k) rh[k] = nc[k] * h[k];
          for (int64_t j = 0; j < hidden; ++j) {
            float q = Rb[2 * hidden + j];
            for (int64_t k = 0; k < hidden; ++k) q += rh[k] * R[(2 * hidden + j) * hidden + k];
            float hh = act[1](clipped(xw[2 * hidden + j] + q));
            float z = nh[j];
            nh[j] = (1 - z) * hh + z * h[j];
          }
        }
        h = nh;
        if (kind == Kind::kLstm) c = nc;
        float* yt = y.data() + ((t * dirs + dir) * batch + n) * hidden;
        for (int64_t j = 0; j < hidden; ++j) yt[j] = h[j];
      }
      for (int64_t j = 0; j < hidden; ++j) {
        yh[(dir * batch + n) * hidden + j] = h[j];
        if (kind == Kind::kLstm) yc[(dir * batch + n) * hidden + j] = c[j];
      }
    }
  }
  if (batch_first) {
    // Y [seq, dirs, batch, hidden] -> [batch, seq, dirs, hidden]; states
    // [dirs, batch, hidden] -> [batch, dirs, hidden].
    std::vector<float> t(y.size());
    for (int64_t s = 0; s < seq; ++s)
      for (int64_t d = 0; d < dirs; ++d)
        for (int64_t b = 0; b < batch; ++b)
          for (int64_t j = 0; j < hidden; ++j)
            t[((b * seq + s) * dirs + d) * hidden + j] =
                y[((s * dirs + d) * batch + b) * hidden + j];
    y = std::move(t);
    yh = swap01(yh, dirs, batch, hidden);
    yc = swap01(yc, dirs, batch, hidden);
  }
  if (ctx.has_output(0)) FromFloat(y, ctx.out(0));
  if (ctx.has_output(1)) FromFloat(yh, ctx.out(1));
  if (kind == Kind::kLstm && ctx.has_output(2)) FromFloat(yc, ctx.out(2));
  return Status::Ok();
}

Status RnnKernel(KernelContext& ctx) { return Recurrent(ctx, Kind::kRnn); }
Status GruKernel(KernelContext& ctx) { return Recurrent(ctx, Kind::kGru); }
Status LstmKernel(KernelContext& ctx) { return Recurrent(ctx, Kind::kLstm); }

}  // namespace

void RegisterRnnKernels(KernelTable& t) {
  t["RNN"] = RnnKernel;
  t["GRU"] = GruKernel;
  t["LSTM"] = LstmKernel;
}

}  // namespace amp::cpu
