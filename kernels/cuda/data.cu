// Data movement and index kernels: strided copies (Transpose, Slice, Expand,
// Concat, Split), Gather, ScatterND, ScatterElements, OneHot, Fill, and
// Dropout with amp's counter-based generator. Then their launchers.
#include "kernels/cuda/common.cuh"

namespace amp::cuda {
namespace {

struct OutStrides {
  int64_t s[kMaxRank];
};

template <typename W>
__global__ void StridedCopyKernel(const W* in, int64_t in_offset, W* out, Strided s, int64_t n,
                                  bool has_out_strides, OutStrides os, int64_t out_offset) {
  AMP_GRID_LOOP(i, n) {
    int64_t off = in_offset, o = out_offset, rest = i;
    for (int d = s.rank - 1; d >= 0; --d) {
      int64_t c = rest % s.dims[d];
      rest /= s.dims[d];
      off += c * s.strides[0][d];
      o += c * os.s[d];
    }
    out[has_out_strides ? o : i] = in[off];
  }
}

__global__ void GatherKernel(const unsigned char* data, DevPtr idx, int64_t ni, unsigned char* out,
                             int64_t outer, int64_t n, int64_t inner, int width) {
  int64_t total = outer * ni * inner;
  AMP_GRID_LOOP(i, total) {
    int64_t r = i % inner;
    int64_t j = (i / inner) % ni;
    int64_t o = i / (inner * ni);
    long long k = LoadI(idx.data, idx.dtype, j);
    if (k < 0) k += n;
    if (k < 0 || k >= n) k = 0;  // out of range: the host checks indices it can see
    const unsigned char* src = data + ((o * n + k) * inner + r) * width;
    unsigned char* dst = out + i * width;
    for (int b = 0; b < width; ++b) dst[b] = src[b];
  }
}

__device__ void Combine(void* out, int dt, int64_t at, const void* upd, int64_t j, int reduction) {
  if (IsFloatType(dt)) {
    float v = LoadF(upd, dt, j);
    if (reduction == 1) {
      if (dt == kF32) {
        atomicAdd(static_cast<float*>(out) + at, v);
        return;
      }
      v += LoadF(out, dt, at);  // 16-bit adds: indices are unique in amp's graphs
    }
    StoreF(out, dt, at, v);
  } else {
    long long v = LoadI(upd, dt, j);
    if (reduction == 1) v += LoadI(out, dt, at);
    StoreI(out, dt, at, v);
  }
}

struct Dims {
  int64_t d[kMaxRank];
};

__global__ void ScatterNDKernel(void* out, int dt, Dims data_dims, int rank, DevPtr idx,
                                int64_t n_updates, int k, const void* upd, int64_t slice,
                                int reduction) {
  int64_t total = n_updates * slice;
  AMP_GRID_LOOP(i, total) {
    int64_t u = i / slice, e = i % slice;
    int64_t base = 0;
    for (int d = 0; d < k; ++d) {
      long long c = LoadI(idx.data, idx.dtype, u * k + d);
      if (c < 0) c += data_dims.d[d];
      base = base * data_dims.d[d] + c;
    }
    for (int d = k; d < rank; ++d) base *= data_dims.d[d];
    Combine(out, dt, base + e, upd, i, reduction);
  }
}

__global__ void ScatterElementsKernel(void* out, int dt, Dims data_dims, int rank, int axis,
                                      DevPtr idx, Dims idx_dims, int64_t n, const void* upd,
                                      int reduction) {
  AMP_GRID_LOOP(i, n) {
    int64_t rest = i, off = 0, stride = 1;
    long long k = LoadI(idx.data, idx.dtype, i);
    if (k < 0) k += data_dims.d[axis];
    for (int d = rank - 1; d >= 0; --d) {
      int64_t c = rest % idx_dims.d[d];
      rest /= idx_dims.d[d];
      off += (d == axis ? k : c) * stride;
      stride *= data_dims.d[d];
    }
    Combine(out, dt, off, upd, i, reduction);
  }
}

__global__ void OneHotKernel(DevPtr idx, const unsigned char* values, unsigned char* out, int width,
                             int64_t outer, int64_t depth, int64_t inner) {
  int64_t total = outer * depth * inner;
  AMP_GRID_LOOP(i, total) {
    int64_t r = i % inner;
    int64_t k = (i / inner) % depth;
    int64_t o = i / (inner * depth);
    long long v = LoadI(idx.data, idx.dtype, o * inner + r);
    if (v < 0) v += depth;
    const unsigned char* src = values + (v == k ? width : 0);
    for (int b = 0; b < width; ++b) out[i * width + b] = src[b];
  }
}

struct Value8 {
  unsigned char b[8];
};

__global__ void FillKernel(unsigned char* out, int64_t n, Value8 v, int width) {
  AMP_GRID_LOOP(i, n) {
    for (int b = 0; b < width; ++b) out[i * width + b] = v.b[b];
  }
}

__global__ void DropoutKernel(DevPtr x, void* y, bool* mask, int64_t n, float ratio,
                              uint64_t stream_seed, float scale) {
  AMP_GRID_LOOP(i, n) {
    double u = static_cast<double>(Mix(stream_seed + static_cast<uint64_t>(i)) >> 11) * 0x1.0p-53;
    bool keep = u >= ratio;
    StoreF(y, x.dtype, i, keep ? LoadF(x.data, x.dtype, i) * scale : 0.f);
    if (mask) mask[i] = keep;
  }
}

}  // namespace

Status StridedCopy(const void* in, int64_t in_offset, void* out, const Strided& s, int width,
                   const int64_t* out_strides, int64_t out_offset, void* stream) {
  int64_t n = Total(s);
  if (n == 0) return Status::Ok();
  OutStrides os{};
  if (out_strides)
    for (int d = 0; d < s.rank; ++d) os.s[d] = out_strides[d];
  auto st = static_cast<cudaStream_t>(stream);
  bool has = out_strides != nullptr;
  switch (width) {
    case 1:
      StridedCopyKernel<<<Blocks(n), kThreads, 0, st>>>(static_cast<const uint8_t*>(in), in_offset,
                                                        static_cast<uint8_t*>(out), s, n, has, os,
                                                        out_offset);
      break;
    case 2:
      StridedCopyKernel<<<Blocks(n), kThreads, 0, st>>>(static_cast<const uint16_t*>(in), in_offset,
                                                        static_cast<uint16_t*>(out), s, n, has, os,
                                                        out_offset);
      break;
    case 4:
      StridedCopyKernel<<<Blocks(n), kThreads, 0, st>>>(static_cast<const uint32_t*>(in), in_offset,
                                                        static_cast<uint32_t*>(out), s, n, has, os,
                                                        out_offset);
      break;
    case 8:
      StridedCopyKernel<<<Blocks(n), kThreads, 0, st>>>(static_cast<const uint64_t*>(in), in_offset,
                                                        static_cast<uint64_t*>(out), s, n, has, os,
                                                        out_offset);
      break;
    default:
      return Internal("StridedCopy: element width ", width);
  }
  return CheckLaunch("StridedCopy");
}

Status Gather(const void* data, DevPtr indices, int64_t ni, void* out, int64_t outer, int64_t n,
              int64_t inner, int width, void* stream) {
  int64_t total = outer * ni * inner;
  if (total == 0) return Status::Ok();
  GatherKernel<<<Blocks(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      static_cast<const unsigned char*>(data), indices, ni, static_cast<unsigned char*>(out), outer,
      n, inner, width);
  return CheckLaunch("Gather");
}

Status ScatterND(void* out, int dtype, const int64_t* data_dims, int data_rank, DevPtr indices,
                 int64_t n_updates, int k, const void* updates, int reduction, void* stream) {
  Dims dd{};
  int64_t slice = 1;
  for (int d = 0; d < data_rank; ++d) dd.d[d] = data_dims[d];
  for (int d = k; d < data_rank; ++d) slice *= data_dims[d];
  int64_t total = n_updates * slice;
  if (total == 0) return Status::Ok();
  ScatterNDKernel<<<Blocks(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      out, dtype, dd, data_rank, indices, n_updates, k, updates, slice, reduction);
  return CheckLaunch("ScatterND");
}

Status ScatterElements(void* out, int dtype, const int64_t* data_dims, int rank, int axis,
                       DevPtr indices, const int64_t* idx_dims, const void* updates, int reduction,
                       void* stream) {
  Dims dd{}, id{};
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) {
    dd.d[d] = data_dims[d];
    id.d[d] = idx_dims[d];
    n *= idx_dims[d];
  }
  if (n == 0) return Status::Ok();
  ScatterElementsKernel<<<Blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      out, dtype, dd, rank, axis, indices, id, n, updates, reduction);
  return CheckLaunch("ScatterElements");
}

Status OneHot(DevPtr indices, const void* values, void* out, int width, int64_t outer,
              int64_t depth, int64_t inner, void* stream) {
  int64_t total = outer * depth * inner;
  if (total == 0) return Status::Ok();
  OneHotKernel<<<Blocks(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      indices, static_cast<const unsigned char*>(values), static_cast<unsigned char*>(out), width,
      outer, depth, inner);
  return CheckLaunch("OneHot");
}

Status Fill(void* out, int64_t n, const void* value, int width, void* stream) {
  if (n == 0) return Status::Ok();
  Value8 v{};
  for (int b = 0; b < width && b < 8; ++b) v.b[b] = static_cast<const unsigned char*>(value)[b];
  FillKernel<<<Blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      static_cast<unsigned char*>(out), n, v, width);
  return CheckLaunch("Fill");
}

Status Dropout(DevPtr x, void* y, bool* mask, int64_t n, float ratio, uint64_t seed, uint64_t step,
               void* stream) {
  if (n == 0) return Status::Ok();
  uint64_t stream_seed = Mix(seed ^ Mix(step));
  DropoutKernel<<<Blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, y, mask, n, ratio, stream_seed, static_cast<float>(1.0 / (1.0 - ratio)));
  return CheckLaunch("Dropout");
}

}  // namespace amp::cuda
