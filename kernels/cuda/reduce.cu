// Reductions (double accumulation, one thread per output), Softmax and
// LogSoftmax (one thread per row), then their launchers. Correct first; the
// one-block-per-row versions come with the performance work.
#include "kernels/cuda/common.cuh"

namespace amp::cuda {
namespace {

struct ReduceDesc {
  int rank;
  int64_t dims[kMaxRank];
  int64_t strides[kMaxRank];
  bool reduced[kMaxRank];
};

// Offset of the j-th element (over the reduced dims) of the output whose
// kept coordinates start at `base`.
__device__ int64_t ReducedOffset(const ReduceDesc& r, int64_t base, int64_t j) {
  for (int d = r.rank - 1; d >= 0; --d) {
    if (!r.reduced[d]) continue;
    base += (j % r.dims[d]) * r.strides[d];
    j /= r.dims[d];
  }
  return base;
}

__global__ void ReduceKernel(int kind, DevPtr in, ReduceDesc r, void* out, int out_dt,
                             int64_t n_out, int64_t n_red) {
  AMP_GRID_LOOP(o, n_out) {
    // Base offset from the kept coordinates.
    int64_t rest = o, base = 0;
    for (int d = r.rank - 1; d >= 0; --d) {
      if (r.reduced[d]) continue;
      int64_t c = rest % r.dims[d];
      rest /= r.dims[d];
      base += c * r.strides[d];
    }
    double peak = -INFINITY;
    if (kind == 9) {
      for (int64_t j = 0; j < n_red; ++j) {
        int64_t off = ReducedOffset(r, base, j);
        peak = fmax(peak, static_cast<double>(LoadF(in.data, in.dtype, off)));
      }
      if (isinf(peak)) peak = 0;  // inf - inf would make NaN of an inf (or all -inf) sum
    }
    double acc = kind == 2 ? -INFINITY : kind == 3 ? INFINITY : kind == 7 ? 1.0 : 0.0;
    for (int64_t j = 0; j < n_red; ++j) {
      int64_t off = ReducedOffset(r, base, j);
      double v = LoadF(in.data, in.dtype, off);
      switch (kind) {
        case 0:
        case 1:
        case 8:
          acc += v;
          break;
        case 2:
          acc = isnan(acc) || isnan(v) ? NAN : fmax(acc, v);  // fmax drops NaN
          break;
        case 3:
          acc = isnan(acc) || isnan(v) ? NAN : fmin(acc, v);
          break;
        case 4:
        case 6:
          acc += v * v;
          break;
        case 5:
          acc += fabs(v);
          break;
        case 7:
          acc *= v;
          break;
        case 9:
          acc += exp(v - peak);
          break;
      }
    }
    if (kind == 1) acc = n_red ? acc / n_red : NAN;
    if (kind == 6) acc = sqrt(acc);
    if (kind == 8) acc = log(acc);
    if (kind == 9) acc = log(acc) + peak;
    if (IsFloatType(out_dt))
      StoreF(out, out_dt, o, static_cast<float>(acc));
    else
      StoreI(out, out_dt, o, static_cast<long long>(acc));
  }
}

__global__ void SoftmaxKernel(int kind, DevPtr in, void* out, int out_dt, int64_t outer, int64_t n,
                              int64_t inner) {
  int64_t rows = outer * inner;
  AMP_GRID_LOOP(row, rows) {
    int64_t o = row / inner, r = row % inner;
    int64_t base = o * n * inner + r;
    float peak = -INFINITY;
    for (int64_t k = 0; k < n; ++k) peak = fmaxf(peak, LoadF(in.data, in.dtype, base + k * inner));
    double sum = 0;
    for (int64_t k = 0; k < n; ++k) sum += exp(LoadF(in.data, in.dtype, base + k * inner) - peak);
    double lse = log(sum);
    for (int64_t k = 0; k < n; ++k) {
      float x = LoadF(in.data, in.dtype, base + k * inner) - peak;
      float y = kind == 0 ? static_cast<float>(exp(static_cast<double>(x)) / sum)
                          : static_cast<float>(x - lse);
      StoreF(out, out_dt, base + k * inner, y);
    }
  }
}

}  // namespace

Status Reduce(int kind, DevPtr in, const int64_t* dims, int rank, const bool* reduce_mask,
              void* out, int out_dtype, void* stream) {
  if (rank > kMaxRank) return Unimplemented("Reduce: rank ", rank, " over ", kMaxRank);
  ReduceDesc r{};
  r.rank = rank;
  int64_t stride = 1, n_out = 1, n_red = 1;
  for (int d = rank - 1; d >= 0; --d) {
    r.dims[d] = dims[d];
    r.strides[d] = stride;
    r.reduced[d] = reduce_mask[d];
    stride *= dims[d];
    (reduce_mask[d] ? n_red : n_out) *= dims[d];
  }
  if (n_out == 0) return Status::Ok();
  ReduceKernel<<<Blocks(n_out), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      kind, in, r, out, out_dtype, n_out, n_red);
  return CheckLaunch("Reduce");
}

Status Softmax(int kind, DevPtr in, void* out, int out_dtype, int64_t outer, int64_t n,
               int64_t inner, void* stream) {
  int64_t rows = outer * inner;
  if (rows == 0) return Status::Ok();
  SoftmaxKernel<<<Blocks(rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      kind, in, out, out_dtype, outer, n, inner);
  return CheckLaunch("Softmax");
}

}  // namespace amp::cuda
