// Normalization kernels: BatchNormalization (inference and training mode,
// with the running-statistics update), LayerNormalization (with its Mean and
// InvStdDev outputs), InstanceNormalization and GroupNormalization.
// Statistics are computed in double and kept in FP32.
#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "kernels/cpu/families.h"
#include "kernels/cpu/parallel.h"

namespace amp::cpu {
namespace {

// Normalizes `groups` rows of `n` elements of x in place: (x - mean) * inv_std,
// writing each row's mean and inv_std.
void NormalizeRows(std::vector<float>& x, int64_t groups, int64_t n, double epsilon,
                   std::vector<float>* mean_out, std::vector<float>* inv_out) {
  for (int64_t g = 0; g < groups; ++g) {
    float* p = x.data() + g * n;
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += p[i];
    double mean = n ? s / n : 0;
    double v = 0;
    for (int64_t i = 0; i < n; ++i) v += (p[i] - mean) * (p[i] - mean);
    double var = n ? v / n : 0;
    double inv = 1.0 / std::sqrt(var + epsilon);
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>((p[i] - mean) * inv);
    if (mean_out) (*mean_out)[g] = static_cast<float>(mean);
    if (inv_out) (*inv_out)[g] = static_cast<float>(inv);
  }
}

Status BatchNormKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  int64_t n = x.dims[0], c = x.dims[1];
  int64_t spatial = Product(x.dims, 2);
  double eps = ctx.node.GetFloat("epsilon", 1e-5f);
  double momentum = ctx.node.GetFloat("momentum", 0.9f);
  bool training = ctx.node.GetInt("training_mode", 0) != 0;
  std::vector<float> fx = ToFloat(x), scale = ToFloat(ctx.in(1)), bias = ToFloat(ctx.in(2)),
                     in_mean = ToFloat(ctx.in(3)), in_var = ToFloat(ctx.in(4));
  std::vector<float> mean(c), var(c);
  if (training) {
    for (int64_t ch = 0; ch < c; ++ch) {
      double s = 0, ss = 0;
      for (int64_t b = 0; b < n; ++b) {
        const float* p = fx.data() + (b * c + ch) * spatial;
        for (int64_t i = 0; i < spatial; ++i) s += p[i];
      }
      double cnt = static_cast<double>(n * spatial);
      double m = s / cnt;
      for (int64_t b = 0; b < n; ++b) {
        const float* p = fx.data() + (b * c + ch) * spatial;
        for (int64_t i = 0; i < spatial; ++i) ss += (p[i] - m) * (p[i] - m);
      }
      mean[ch] = static_cast<float>(m);
      var[ch] = static_cast<float>(ss / cnt);
    }
  } else {
    mean = in_mean;
    var = in_var;
  }
  for (int64_t ch = 0; ch < c; ++ch) {
    double inv = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
    for (int64_t b = 0; b < n; ++b) {
      float* p = fx.data() + (b * c + ch) * spatial;
      for (int64_t i = 0; i < spatial; ++i)
        p[i] = static_cast<float>((p[i] - mean[ch]) * inv * scale[ch] + bias[ch]);
    }
  }
  FromFloat(fx, ctx.out(0));
  if (training) {
    if (ctx.has_output(1)) {
      std::vector<float> rm(c);
      for (int64_t ch = 0; ch < c; ++ch)
        rm[ch] = static_cast<float>(in_mean[ch] * momentum + mean[ch] * (1 - momentum));
      FromFloat(rm, ctx.out(1));
    }
    if (ctx.has_output(2)) {
      std::vector<float> rv(c);
      for (int64_t ch = 0; ch < c; ++ch)
        rv[ch] = static_cast<float>(in_var[ch] * momentum + var[ch] * (1 - momentum));
      FromFloat(rv, ctx.out(2));
    }
  }
  return Status::Ok();
}

Status LayerNormKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  int64_t axis = NormalizeAxis(ctx.node.GetInt("axis", -1), x.rank());
  double eps = ctx.node.GetFloat("epsilon", 1e-5f);
  int64_t rows = 1;
  for (int64_t d = 0; d < axis; ++d) rows *= x.dims[d];
  int64_t n = Product(x.dims, axis);
  std::vector<float> fx = ToFloat(x), scale = ToFloat(ctx.in(1));
  std::vector<float> bias = ctx.has_input(2) ? ToFloat(ctx.in(2)) : std::vector<float>();
  std::vector<float> mean(rows), inv(rows);
  NormalizeRows(fx, rows, n, eps, &mean, &inv);
  // Scale and B broadcast against the normalized dims.
  std::vector<int64_t> norm_dims(x.dims.begin() + axis, x.dims.end());
  std::vector<int64_t> ss = BroadcastStrides(ctx.in(1).dims, norm_dims);
  std::vector<int64_t> bs =
      ctx.has_input(2) ? BroadcastStrides(ctx.in(2).dims, norm_dims) : std::vector<int64_t>();
  std::vector<int64_t> ns = Strides(norm_dims);
  std::vector<int64_t> soff(n), boff(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, so = 0, bo = 0;
    for (size_t d = 0; d < norm_dims.size(); ++d) {
      int64_t id = rem / ns[d];
      rem %= ns[d];
      so += id * ss[d];
      if (!bs.empty()) bo += id * bs[d];
    }
    soff[i] = so;
    boff[i] = bo;
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* p = fx.data() + r * n;
    for (int64_t i = 0; i < n; ++i)
      p[i] = p[i] * scale[soff[i]] + (bias.empty() ? 0.f : bias[boff[i]]);
  }
  FromFloat(fx, ctx.out(0));
  if (ctx.has_output(1)) FromFloat(mean, ctx.out(1));
  if (ctx.has_output(2)) FromFloat(inv, ctx.out(2));
  return Status::Ok();
}

Status InstanceNormKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  int64_t n = x.dims[0], c = x.dims[1];
  int64_t spatial = Product(x.dims, 2);
  double eps = ctx.node.GetFloat("epsilon", 1e-5f);
  std::vector<float> fx = ToFloat(x), scale = ToFloat(ctx.in(1)), bias = ToFloat(ctx.in(2));
  NormalizeRows(fx, n * c, spatial, eps, nullptr, nullptr);
  for (int64_t r = 0; r < n * c; ++r)
    for (int64_t i = 0; i < spatial; ++i)
      fx[r * spatial + i] = fx[r * spatial + i] * scale[r % c] + bias[r % c];
  FromFloat(fx, ctx.out(0));
  return Status::Ok();
}

Status GroupNormKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  int64_t n = x.dims[0], c = x.dims[1];
  int64_t groups = ctx.node.GetInt("num_groups", 1);
  if (groups <= 0 || c % groups != 0) return ctx.Error("num_groups must divide the channels");
  int64_t spatial = Product(x.dims, 2);
  double eps = ctx.node.GetFloat("epsilon", 1e-5f);
  std::vector<float> fx = ToFloat(x), scale = ToFloat(ctx.in(1)), bias = ToFloat(ctx.in(2));
  NormalizeRows(fx, n * groups, (c / groups) * spatial, eps, nullptr, nullptr);
  // Opset 21: scale and bias per channel; opset 18: per group.
  bool per_channel = static_cast<int64_t>(scale.size()) == c;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch) {
      int64_t k = per_channel ? ch : ch / (c / groups);
      float* p = fx.data() + (b * c + ch) * spatial;
      for (int64_t i = 0; i < spatial; ++i) p[i] = p[i] * scale[k] + bias[k];
    }
  FromFloat(fx, ctx.out(0));
  return Status::Ok();
}

// The backward of one normalized group (a LayerNorm row, a BatchNorm
// channel) of n elements in index order, contiguous: x and dxhat in; xhat
// (n floats, also the caller's to read after) and dx out; xc is scratch.
// It rounds where the unfused FP32 ops round (the means sum in double in
// index order and store FP32, every other op is one FP32 operation), so
// each fused kernel below gives the unfused values bit for bit.
void NormalizeBackward(int64_t n, const float* x, const float* dxhat, float eps, float* xc,
                       float* xhat, float* dx) {
  double count = static_cast<double>(n);
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]);
  float mean = static_cast<float>(acc / count);
  acc = 0;
  for (int64_t i = 0; i < n; ++i) {
    xc[i] = x[i] - mean;
    float sq = xc[i] * xc[i];
    acc += static_cast<double>(sq);
  }
  float var = static_cast<float>(acc / count);
  float inv = 1 / std::sqrt(var + eps);
  double s1 = 0, s2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    xhat[i] = xc[i] * inv;
    float p = dxhat[i] * xhat[i];
    s1 += static_cast<double>(dxhat[i]);
    s2 += static_cast<double>(p);
  }
  float m1 = static_cast<float>(s1 / count), m2 = static_cast<float>(s2 / count);
  for (int64_t i = 0; i < n; ++i) dx[i] = inv * ((dxhat[i] - m1) - xhat[i] * m2);
}

// ai.amp NormalizeGrad (fuse-norm-grad): LayerNormalization's or
// BatchNormalization's backward over `axes`, one group (the elements that
// share the other coordinates: a row, or a channel) at a time, visiting a
// group's elements in index order and rounding where the unfused FP32 ops it
// replaces round (ReduceMean sums in double in index order and stores FP32;
// every other op is one FP32 operation), so dx and xhat are the unfused
// values bit for bit.
Status NormalizeGradKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  const TensorRef& dxhat = ctx.in(1);
  if (x.dtype != DType::kFloat32 || dxhat.dtype != DType::kFloat32 || x.dims != dxhat.dims)
    return ctx.Error("expects x and dxhat float32 of one shape");
  std::vector<int64_t> axes = ctx.node.GetInts("axes");
  std::vector<bool> reduced(x.rank(), false);
  for (int64_t a : axes) {
    int64_t k = NormalizeAxis(a, x.rank());
    if (k < 0 || k >= x.rank()) return ctx.Error("axis ", a, " out of range");
    reduced[k] = true;
  }
  float eps = ctx.node.GetFloat("epsilon", 1e-5f);
  std::vector<int64_t> strides = Strides(x.dims);
  // Offsets of a group's elements (row-major over the reduced dims: index
  // order) and of each group's first element.
  std::vector<int64_t> member = {0}, group = {0};
  for (int64_t d = 0; d < x.rank(); ++d) {
    std::vector<int64_t>& v = reduced[d] ? member : group;
    std::vector<int64_t> next;
    next.reserve(v.size() * x.dims[d]);
    for (int64_t o : v)
      for (int64_t c = 0; c < x.dims[d]; ++c) next.push_back(o + c * strides[d]);
    v = std::move(next);
  }
  int64_t n = static_cast<int64_t>(member.size());
  if (x.numel() == 0) return Status::Ok();
  const float* px = x.as<float>();
  const float* pd = dxhat.as<float>();
  float* pdx = ctx.out(0).as<float>();
  float* pxh = ctx.has_output(1) ? ctx.out(1).as<float>() : nullptr;
  ParallelFor(static_cast<int64_t>(group.size()), 1, [&](int64_t first, int64_t last) {
    std::vector<float> xs(n), ds(n), xc(n), xh(n), dx(n);
    for (int64_t g = first; g < last; ++g) {
      const int64_t base = group[g];
      for (int64_t i = 0; i < n; ++i) {
        xs[i] = px[base + member[i]];
        ds[i] = pd[base + member[i]];
      }
      NormalizeBackward(n, xs.data(), ds.data(), eps, xc.data(), xh.data(), dx.data());
      for (int64_t i = 0; i < n; ++i) {
        pdx[base + member[i]] = dx[i];
        if (pxh) pxh[base + member[i]] = xh[i];
      }
    }
  });
  return Status::Ok();
}

// ai.amp LayerNormGrad (fuse-norm-grad): LayerNorm's whole backward over
// the trailing axes from `axis`: dxhat = dy * scale, NormalizeGrad's
// arithmetic per row, dx + addend (the residual's Sum), and the scale's and
// bias's gradients and dx's own column sums (a bias gradient) over the rows
// in row order in double (what ReduceSum does), each rounded where the
// unfused ops round: the unfused values bit for bit. Output 4 is dx rounded
// once to its type (the Cast it replaces).
Status LayerNormGradKernel(KernelContext& ctx) {
  const TensorRef &x = ctx.in(0), &dy = ctx.in(1), &scale = ctx.in(2);
  const TensorRef* addend = ctx.has_input(3) ? &ctx.in(3) : nullptr;
  if (x.dtype != DType::kFloat32 || dy.dtype != DType::kFloat32 || scale.dtype != DType::kFloat32 ||
      x.dims != dy.dims || (addend && (addend->dtype != DType::kFloat32 || addend->dims != x.dims)))
    return ctx.Error("expects float32 x, dy (and addend) of one shape and a float32 scale");
  int64_t axis = NormalizeAxis(ctx.node.GetInt("axis", -1), x.rank());
  if (axis <= 0 || axis >= x.rank()) return ctx.Error("axis out of range");
  int64_t n = Product(x.dims, static_cast<size_t>(axis));
  if (scale.numel() != n) return ctx.Error("scale does not cover the normalized axes");
  int64_t rows = n ? x.numel() / n : 0;
  float eps = ctx.node.GetFloat("epsilon", 1e-5f);
  const float *px = x.as<float>(), *pdy = dy.as<float>(), *ps = scale.as<float>();
  const float* pa = addend ? addend->as<float>() : nullptr;
  float* pdx = ctx.out(0).as<float>();
  TensorRef* copy = ctx.has_output(4) ? &ctx.out(4) : nullptr;
  if (copy && (copy->dims != x.dims || !IsFloat(copy->dtype)))
    return ctx.Error("output 4 (dx's copy) must be a float tensor of x's shape");
  std::vector<float> xhat(static_cast<size_t>(rows * n));
  // Each row's dx, and its copy rounded once to the copy's type, in one pass.
  auto row_pass = [&](auto store) {
    ParallelFor(rows, 1, [&](int64_t first, int64_t last) {
      std::vector<float> xc(n), d(n), dx(n);
      for (int64_t r = first; r < last; ++r) {
        const float* gr = pdy + r * n;
        for (int64_t i = 0; i < n; ++i) d[i] = gr[i] * ps[i];
        NormalizeBackward(n, px + r * n, d.data(), eps, xc.data(), xhat.data() + r * n, dx.data());
        for (int64_t i = 0; i < n; ++i) {
          float v = pa ? pa[r * n + i] + dx[i] : dx[i];
          pdx[r * n + i] = v;
          store(r * n + i, v);
        }
      }
    });
  };
  if (!copy)
    row_pass([](int64_t, float) {});
  else
    VisitFloat(copy->dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* out = copy->as<T>();
      row_pass([out](int64_t i, float v) { out[i] = Store<T>(v); });
    });
  float* pds = ctx.has_output(1) ? ctx.out(1).as<float>() : nullptr;
  float* pdb = ctx.has_output(2) ? ctx.out(2).as<float>() : nullptr;
  float* pdxs = ctx.has_output(3) ? ctx.out(3).as<float>() : nullptr;
  for (size_t k = 1; k < 4; ++k)
    if (ctx.has_output(k) && (ctx.out(k).dtype != DType::kFloat32 || ctx.out(k).numel() != n))
      return ctx.Error("output ", k, " must be float32 of the scale's size");
  ParallelFor(n, 64, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      double s = 0, b = 0, t = 0;
      for (int64_t r = 0; r < rows; ++r) {
        float g = pdy[r * n + c];
        float h = g * xhat[r * n + c];
        s += static_cast<double>(h);
        b += static_cast<double>(g);
        if (pdxs) t += static_cast<double>(pdx[r * n + c]);
      }
      if (pds) pds[c] = static_cast<float>(s);
      if (pdb) pdb[c] = static_cast<float>(b);
      if (pdxs) pdxs[c] = static_cast<float>(t);
    }
  });
  return Status::Ok();
}

// ai.amp BatchNormGrad (fuse-norm-grad): training BatchNormalization's
// whole backward, one channel at a time (its elements in index order):
// x and dy widened from their type (what the Casts it replaces did),
// dxhat = dy * scale, NormalizeGrad's arithmetic, the scale's and bias's
// gradients summed in double in index order (what ReduceSum does) and dx
// rounded once to its type: the unfused values bit for bit.
Status BatchNormGradKernel(KernelContext& ctx) {
  const TensorRef &x = ctx.in(0), &dy = ctx.in(1), &scale = ctx.in(2);
  if (x.rank() < 2 || x.dims != dy.dims || scale.dtype != DType::kFloat32 ||
      scale.numel() != x.dims[1] || !IsFloat(x.dtype) || !IsFloat(dy.dtype))
    return ctx.Error("expects float x and dy of one [N, C, ...] shape and C float32 scales");
  int64_t n = x.dims[0], c = x.dims[1], spatial = Product(x.dims, 2);
  float eps = ctx.node.GetFloat("epsilon", 1e-5f);
  FloatView fx(x), fdy(dy);
  const float* px = fx.data();
  const float* pdy = fdy.data();
  const float* ps = scale.as<float>();
  std::vector<float> dx(static_cast<size_t>(x.numel()));
  std::vector<float> dscale(c), dbias(c);
  int64_t members = n * spatial;
  ParallelFor(c, 1, [&](int64_t first, int64_t last) {
    // A channel's elements in index order, contiguous: x, dy, then dx.
    std::vector<float> xs(members), gs(members), xc(members), xh(members), d(members), dxs(members);
    for (int64_t ch = first; ch < last; ++ch) {
      for (int64_t b = 0; b < n; ++b) {
        const int64_t from = (b * c + ch) * spatial;
        std::copy(px + from, px + from + spatial, xs.begin() + b * spatial);
        std::copy(pdy + from, pdy + from + spatial, gs.begin() + b * spatial);
      }
      for (int64_t i = 0; i < members; ++i) d[i] = gs[i] * ps[ch];
      NormalizeBackward(members, xs.data(), d.data(), eps, xc.data(), xh.data(), dxs.data());
      double ss = 0, sb = 0;
      for (int64_t i = 0; i < members; ++i) {
        float t = gs[i] * xh[i];
        ss += static_cast<double>(t);
        sb += static_cast<double>(gs[i]);
      }
      for (int64_t b = 0; b < n; ++b)
        std::copy(dxs.begin() + b * spatial, dxs.begin() + (b + 1) * spatial,
                  dx.begin() + (b * c + ch) * spatial);
      dscale[ch] = static_cast<float>(ss);
      dbias[ch] = static_cast<float>(sb);
    }
  });
  FromFloat(dx, ctx.out(0));
  if (ctx.has_output(1)) std::copy(dscale.begin(), dscale.end(), ctx.out(1).as<float>());
  if (ctx.has_output(2)) std::copy(dbias.begin(), dbias.end(), ctx.out(2).as<float>());
  return Status::Ok();
}

}  // namespace

void RegisterNormKernels(KernelTable& t) {
  t["BatchNormalization"] = BatchNormKernel;
  t["LayerNormalization"] = LayerNormKernel;
  t["ai.amp:LayerNormalization"] = LayerNormKernel;
  t["InstanceNormalization"] = InstanceNormKernel;
  t["GroupNormalization"] = GroupNormKernel;
  t["ai.amp:NormalizeGrad"] = NormalizeGradKernel;
  t["ai.amp:LayerNormGrad"] = LayerNormGradKernel;
  t["ai.amp:BatchNormGrad"] = BatchNormGradKernel;
}

}  // namespace amp::cpu
