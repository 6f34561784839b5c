// LayerNormalization (FP32 statistics, one thread per row) and the
// cross-entropy losses (one block: per-sample terms, then a shared-memory
// sum), then their launchers.
#include "kernels/cuda/common.cuh"

namespace amp::cuda {
namespace {

__global__ void LayerNormKernel(DevPtr x, DevPtr scale, DevPtr bias, int64_t scale_n,
                                int64_t bias_n, void* y, int y_dt, void* mean, void* inv_std,
                                int stat_dt, int64_t rows, int64_t n, float eps) {
  AMP_GRID_LOOP(r, rows) {
    int64_t base = r * n;
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += LoadF(x.data, x.dtype, base + i);
    double m = n ? s / n : 0;
    double v = 0;
    for (int64_t i = 0; i < n; ++i) {
      double d = LoadF(x.data, x.dtype, base + i) - m;
      v += d * d;
    }
    double inv = 1.0 / sqrt((n ? v / n : 0) + eps);
    for (int64_t i = 0; i < n; ++i) {
      float norm = static_cast<float>((LoadF(x.data, x.dtype, base + i) - m) * inv);
      float out = norm * LoadF(scale.data, scale.dtype, i % scale_n);
      if (bias.data) out += LoadF(bias.data, bias.dtype, i % bias_n);
      StoreF(y, y_dt, base + i, out);
    }
    if (mean) StoreF(mean, stat_dt, r, static_cast<float>(m));
    if (inv_std) StoreF(inv_std, stat_dt, r, static_cast<float>(inv));
  }
}

// ai.amp NormalizeGrad: one thread per group (the elements that share the
// kept coordinates: a LayerNorm row, a BatchNorm channel), as LayerNormKernel
// does per row, rounding where the unfused FP32 ops round (sums in double,
// each op one FP32 operation), as the CPU kernel does.
__device__ int64_t NgOffset(const NormGroups& s, int64_t index, bool reduced_side) {
  int64_t off = 0;
  for (int d = s.rank - 1; d >= 0; --d) {
    if (s.reduced[d] != reduced_side) continue;
    off += (index % s.dims[d]) * s.strides[d];
    index /= s.dims[d];
  }
  return off;
}

__global__ void NormalizeGradKernel(const float* x, const float* dxhat, float* dx, float* xhat,
                                    NormGroups s, int64_t groups, int64_t n, float eps) {
  AMP_GRID_LOOP(g, groups) {
    int64_t base = NgOffset(s, g, false);
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += x[base + NgOffset(s, i, true)];
    float mean = static_cast<float>(acc / n);
    acc = 0;
    for (int64_t i = 0; i < n; ++i) {
      float c = __fsub_rn(x[base + NgOffset(s, i, true)], mean);
      acc += __fmul_rn(c, c);
    }
    float var = static_cast<float>(acc / n);
    float inv = __frcp_rn(__fsqrt_rn(__fadd_rn(var, eps)));
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < n; ++i) {
      int64_t at = base + NgOffset(s, i, true);
      float h = __fmul_rn(__fsub_rn(x[at], mean), inv);
      s1 += dxhat[at];
      s2 += __fmul_rn(dxhat[at], h);
    }
    float m1 = static_cast<float>(s1 / n), m2 = static_cast<float>(s2 / n);
    for (int64_t i = 0; i < n; ++i) {
      int64_t at = base + NgOffset(s, i, true);
      float h = __fmul_rn(__fsub_rn(x[at], mean), inv);
      dx[at] = __fmul_rn(inv, __fsub_rn(__fsub_rn(dxhat[at], m1), __fmul_rn(h, m2)));
      if (xhat) xhat[at] = h;
    }
  }
}

// ai.amp LayerNormGrad: one thread per row (dxhat = dy * scale, then
// NormalizeGradKernel's arithmetic, plus the residual's addend), keeping the
// row's mean and 1/std in `stats` and writing dx's copy (rounded once to
// its type) where there is one; then one thread per column for the scale's
// and bias's gradients and dx's column sums (sums over the rows in double,
// in row order, as the CPU kernel does).
__global__ void LayerNormGradRowKernel(const float* x, const float* dy, const float* scale,
                                       const float* addend, float* dx, void* copy, int copy_dt,
                                       float* stats, int64_t rows, int64_t n, float eps) {
  AMP_GRID_LOOP(r, rows) {
    const float* xr = x + r * n;
    const float* gr = dy + r * n;
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += xr[i];
    float mean = static_cast<float>(acc / n);
    acc = 0;
    for (int64_t i = 0; i < n; ++i) {
      float c = __fsub_rn(xr[i], mean);
      acc += __fmul_rn(c, c);
    }
    float var = static_cast<float>(acc / n);
    float inv = __frcp_rn(__fsqrt_rn(__fadd_rn(var, eps)));
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < n; ++i) {
      float d = __fmul_rn(gr[i], scale[i]);
      float h = __fmul_rn(__fsub_rn(xr[i], mean), inv);
      s1 += d;
      s2 += __fmul_rn(d, h);
    }
    float m1 = static_cast<float>(s1 / n), m2 = static_cast<float>(s2 / n);
    for (int64_t i = 0; i < n; ++i) {
      float d = __fmul_rn(gr[i], scale[i]);
      float h = __fmul_rn(__fsub_rn(xr[i], mean), inv);
      float g = __fmul_rn(inv, __fsub_rn(__fsub_rn(d, m1), __fmul_rn(h, m2)));
      float v = addend ? __fadd_rn(addend[r * n + i], g) : g;
      dx[r * n + i] = v;
      if (copy) StoreF(copy, copy_dt, r * n + i, v);
    }
    stats[2 * r] = mean;
    stats[2 * r + 1] = inv;
  }
}

__global__ void LayerNormGradColumnKernel(const float* x, const float* dy, const float* dx,
                                          const float* stats, float* dscale, float* dbias,
                                          float* dx_sum, int64_t rows, int64_t n) {
  AMP_GRID_LOOP(c, n) {
    double s = 0, b = 0, t = 0;
    for (int64_t r = 0; r < rows; ++r) {
      float g = dy[r * n + c];
      float h = __fmul_rn(__fsub_rn(x[r * n + c], stats[2 * r]), stats[2 * r + 1]);
      s += __fmul_rn(g, h);
      b += g;
      if (dx_sum) t += dx[r * n + c];
    }
    if (dscale) dscale[c] = static_cast<float>(s);
    if (dbias) dbias[c] = static_cast<float>(b);
    if (dx_sum) dx_sum[c] = static_cast<float>(t);
  }
}

// ai.amp BatchNormGrad: one thread per channel, as NormalizeGradKernel does
// per group, reading x and dy of their own types, forming dxhat = dy * scale
// inline, summing the scale's and bias's gradients in the same walk and
// rounding dx once to its type.
__global__ void BatchNormGradKernel(DevPtr x, DevPtr dy, const float* scale, void* dx, int dx_dt,
                                    float* dscale, float* dbias, int64_t n, int64_t c,
                                    int64_t spatial, float eps) {
  AMP_GRID_LOOP(ch, c) {
    const int64_t members = n * spatial;
    auto at = [&](int64_t i) { return (i / spatial * c + ch) * spatial + i % spatial; };
    double acc = 0;
    for (int64_t i = 0; i < members; ++i) acc += LoadF(x.data, x.dtype, at(i));
    float mean = static_cast<float>(acc / members);
    acc = 0;
    for (int64_t i = 0; i < members; ++i) {
      float d = __fsub_rn(LoadF(x.data, x.dtype, at(i)), mean);
      acc += __fmul_rn(d, d);
    }
    float var = static_cast<float>(acc / members);
    float inv = __frcp_rn(__fsqrt_rn(__fadd_rn(var, eps)));
    double s1 = 0, s2 = 0, ss = 0, sb = 0;
    for (int64_t i = 0; i < members; ++i) {
      float g = LoadF(dy.data, dy.dtype, at(i));
      float d = __fmul_rn(g, scale[ch]);
      float h = __fmul_rn(__fsub_rn(LoadF(x.data, x.dtype, at(i)), mean), inv);
      s1 += d;
      s2 += __fmul_rn(d, h);
      ss += __fmul_rn(g, h);
      sb += g;
    }
    float m1 = static_cast<float>(s1 / members), m2 = static_cast<float>(s2 / members);
    for (int64_t i = 0; i < members; ++i) {
      float d = __fmul_rn(LoadF(dy.data, dy.dtype, at(i)), scale[ch]);
      float h = __fmul_rn(__fsub_rn(LoadF(x.data, x.dtype, at(i)), mean), inv);
      StoreF(dx, dx_dt, at(i), __fmul_rn(inv, __fsub_rn(__fsub_rn(d, m1), __fmul_rn(h, m2))));
    }
    if (dscale) dscale[ch] = static_cast<float>(ss);
    if (dbias) dbias[ch] = static_cast<float>(sb);
  }
}

constexpr int kLossThreads = 256;

// The sums over the (one) block of each thread's loss terms and weights, in
// double, valid in thread 0.
__device__ void BlockSumLossTerms(double sum, double wsum, double* total, double* weights) {
  __shared__ double sums[kLossThreads];
  __shared__ double wsums[kLossThreads];
  sums[threadIdx.x] = sum;
  wsums[threadIdx.x] = wsum;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      sums[threadIdx.x] += sums[threadIdx.x + stride];
      wsums[threadIdx.x] += wsums[threadIdx.x + stride];
    }
    __syncthreads();
  }
  *total = sums[0];
  *weights = wsums[0];
}

__global__ void CrossEntropyKernel(bool log_softmax, DevPtr scores, DevPtr labels, DevPtr weight,
                                   void* loss, int loss_dt, void* log_prob, int64_t n, int64_t c,
                                   int64_t d, int reduction, bool has_ignore, long long ignore) {
  double sum = 0, wsum = 0;
  for (int64_t s = threadIdx.x; s < n * d; s += blockDim.x) {
    int64_t b = s / d, i = s % d;
    int64_t base = b * c * d + i;
    double lse = 0;
    if (log_softmax) {
      float peak = -INFINITY;
      for (int64_t k = 0; k < c; ++k)
        peak = fmaxf(peak, LoadF(scores.data, scores.dtype, base + k * d));
      double e = 0;
      for (int64_t k = 0; k < c; ++k)
        e += exp(LoadF(scores.data, scores.dtype, base + k * d) - peak);
      lse = log(e) + peak;
      if (log_prob)
        for (int64_t k = 0; k < c; ++k)
          StoreF(log_prob, scores.dtype, base + k * d,
                 static_cast<float>(LoadF(scores.data, scores.dtype, base + k * d) - lse));
    }
    long long t = LoadI(labels.data, labels.dtype, s);
    double l = 0, w = 0;
    if (!(has_ignore && t == ignore) && t >= 0 && t < c) {
      w = weight.data ? LoadF(weight.data, weight.dtype, t) : 1.0;
      l = -(LoadF(scores.data, scores.dtype, base + t * d) - lse) * w;
    }
    if (reduction == 0) StoreF(loss, loss_dt, s, static_cast<float>(l));
    sum += l;
    wsum += w;
  }
  double total = 0, weights = 0;
  BlockSumLossTerms(sum, wsum, &total, &weights);
  if (threadIdx.x == 0 && reduction != 0) {
    double r = reduction == 1 ? total : (weights == 0 ? 0.0 : total / weights);
    StoreF(loss, loss_dt, 0, static_cast<float>(r));
  }
}

// ai.amp SoftmaxCrossEntropyGrad: one thread per row - the peak, the sum of
// exponentials in double, then each (softmax - onehot) * scale in FP32 (and
// its half copy when dx_half is set).
__global__ void SoftmaxCrossEntropyGradKernel(const float* x, DevPtr labels, const float* scale,
                                              bool per_row, float* dx, void* dx_half, int half_dt,
                                              int64_t n, int64_t c) {
  int64_t r = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (r >= n) return;
  const float* row = x + r * c;
  double peak = -INFINITY;
  for (int64_t k = 0; k < c; ++k) peak = row[k] > peak ? row[k] : peak;
  double sum = 0;
  for (int64_t k = 0; k < c; ++k) sum += exp(row[k] - peak);
  long long label = LoadI(labels.data, labels.dtype, r);
  if (label < 0) label += c;
  float s = scale[per_row ? r : 0];
  for (int64_t k = 0; k < c; ++k) {
    float p = static_cast<float>(exp(row[k] - peak) / sum);
    float v = __fmul_rn(__fsub_rn(p, k == label ? 1.0f : 0.0f), s);
    dx[r * c + k] = v;
    if (dx_half) StoreF(dx_half, half_dt, r * c + k, v);
  }
}

// ai.amp SoftmaxCrossEntropy: one block, one thread per row - the peak, the
// sum of exponentials in double, the row's loss term, then each
// (softmax - onehot) * scale / divisor in FP32 (and its half copy) - and the
// block's sum of the terms for the loss (reduction 1 sum, 2 mean).
__global__ void SoftmaxCrossEntropyKernel(DevPtr x, DevPtr labels, const float* scale, bool per_row,
                                          float divisor, float* loss, float* dx, void* dx_half,
                                          int half_dt, int64_t n, int64_t c, int reduction,
                                          bool has_ignore, long long ignore) {
  double sum = 0, wsum = 0;
  for (int64_t r = threadIdx.x; r < n; r += blockDim.x) {
    float peak = -INFINITY;
    for (int64_t k = 0; k < c; ++k) peak = fmaxf(peak, LoadF(x.data, x.dtype, r * c + k));
    double e = 0;
    for (int64_t k = 0; k < c; ++k) e += exp(LoadF(x.data, x.dtype, r * c + k) - peak);
    double lse = log(e) + peak;
    long long t = LoadI(labels.data, labels.dtype, r);
    if (!(has_ignore && t == ignore) && t >= 0 && t < c) {
      sum += -(LoadF(x.data, x.dtype, r * c + t) - lse);
      wsum += 1.0;
    }
    long long label = t < 0 ? t + c : t;
    float sc = scale[per_row ? r : 0];
    if (divisor != 1.0f) sc = __fdiv_rn(sc, divisor);
    for (int64_t k = 0; k < c; ++k) {
      float p = static_cast<float>(exp(LoadF(x.data, x.dtype, r * c + k) - peak) / e);
      float v = __fmul_rn(__fsub_rn(p, k == label ? 1.0f : 0.0f), sc);
      dx[r * c + k] = v;
      if (dx_half) StoreF(dx_half, half_dt, r * c + k, v);
    }
  }
  double total = 0, weights = 0;
  BlockSumLossTerms(sum, wsum, &total, &weights);
  if (threadIdx.x == 0)
    *loss = static_cast<float>(reduction == 1 ? total : (weights == 0 ? 0.0 : total / weights));
}

}  // namespace

Status SoftmaxCrossEntropyGrad(const float* x, DevPtr labels, const float* scale, bool per_row,
                               float* dx, void* dx_half, int half_dtype, int64_t n, int64_t c,
                               void* stream) {
  if (n == 0 || c == 0) return Status::Ok();
  SoftmaxCrossEntropyGradKernel<<<Blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, labels, scale, per_row, dx, dx_half, half_dtype, n, c);
  return CheckLaunch("SoftmaxCrossEntropyGrad");
}

Status NormalizeGrad(const float* x, const float* dxhat, float* dx, float* xhat,
                     const NormGroups& s, float eps, void* stream) {
  int64_t groups = 1, n = 1;
  for (int d = 0; d < s.rank; ++d) (s.reduced[d] ? n : groups) *= s.dims[d];
  if (groups == 0 || n == 0) return Status::Ok();
  NormalizeGradKernel<<<Blocks(groups), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, dxhat, dx, xhat, s, groups, n, eps);
  return CheckLaunch("NormalizeGrad");
}

Status BatchNormGrad(DevPtr x, DevPtr dy, const float* scale, void* dx, int dx_dtype, float* dscale,
                     float* dbias, int64_t n, int64_t c, int64_t spatial, float eps, void* stream) {
  if (c == 0) return Status::Ok();
  BatchNormGradKernel<<<Blocks(c), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, dy, scale, dx, dx_dtype, dscale, dbias, n, c, spatial, eps);
  return CheckLaunch("BatchNormGrad");
}

Status LayerNormGrad(const LayerNormGradArgs& a, void* stream) {
  if (a.rows == 0 || a.n == 0) return Status::Ok();
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  LayerNormGradRowKernel<<<Blocks(a.rows), kThreads, 0, st>>>(
      a.x, a.dy, a.scale, a.addend, a.dx, a.copy, a.copy_dtype, a.stats, a.rows, a.n, a.eps);
  AMP_RETURN_IF_ERROR(CheckLaunch("LayerNormGrad (rows)"));
  LayerNormGradColumnKernel<<<Blocks(a.n), kThreads, 0, st>>>(a.x, a.dy, a.dx, a.stats, a.dscale,
                                                              a.dbias, a.dx_sum, a.rows, a.n);
  return CheckLaunch("LayerNormGrad (columns)");
}

Status LayerNorm(DevPtr x, DevPtr scale, DevPtr bias, void* y, int y_dtype, void* mean,
                 void* inv_std, int stat_dtype, int64_t rows, int64_t n, float epsilon,
                 void* stream) {
  if (rows == 0) return Status::Ok();
  // Scale and bias have n elements (the normalized dims) in amp's graphs.
  LayerNormKernel<<<Blocks(rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, scale, bias, n, n, y, y_dtype, mean, inv_std, stat_dtype, rows, n, epsilon);
  return CheckLaunch("LayerNorm");
}

Status CrossEntropy(bool log_softmax, DevPtr scores, DevPtr labels, DevPtr weight, void* loss,
                    int loss_dtype, void* log_prob, int64_t n, int64_t c, int64_t d, int reduction,
                    bool has_ignore, int64_t ignore_index, void* stream) {
  CrossEntropyKernel<<<1, kLossThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      log_softmax, scores, labels, weight, loss, loss_dtype, log_prob, n, c, d, reduction,
      has_ignore, static_cast<long long>(ignore_index));
  return CheckLaunch("CrossEntropy");
}

Status SoftmaxCrossEntropy(DevPtr x, DevPtr labels, const float* scale, bool per_row, float divisor,
                           float* loss, float* dx, void* dx_half, int half_dtype, int64_t n,
                           int64_t c, int reduction, bool has_ignore, int64_t ignore_index,
                           void* stream) {
  SoftmaxCrossEntropyKernel<<<1, kLossThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, labels, scale, per_row, divisor, loss, dx, dx_half, half_dtype, n, c, reduction,
      has_ignore, static_cast<long long>(ignore_index));
  return CheckLaunch("SoftmaxCrossEntropy");
}

}  // namespace amp::cuda
