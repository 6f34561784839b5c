// Device helpers the CUDA kernel families share: type-erased loads and
// stores (FP32 math on 16-bit storage, round to nearest even on store),
// broadcast offsets, launch shapes and the launch check.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/ops.h"

namespace amp::cuda {

enum : int {
  kF32 = 1,
  kU8 = 2,
  kI8 = 3,
  kU16 = 4,
  kI16 = 5,
  kI32 = 6,
  kI64 = 7,
  kBool = 9,
  kF16 = 10,
  kF64 = 11,
  kU32 = 12,
  kU64 = 13,
  kBF16 = 16,
};

__host__ __device__ inline bool IsFloatType(int dt) {
  return dt == kF32 || dt == kF16 || dt == kBF16 || dt == kF64;
}

__host__ __device__ inline int Width(int dt) {
  switch (dt) {
    case kU8:
    case kI8:
    case kBool:
      return 1;
    case kF16:
    case kBF16:
    case kU16:
    case kI16:
      return 2;
    case kF32:
    case kI32:
    case kU32:
      return 4;
    default:
      return 8;
  }
}

__device__ inline float LoadF(const void* p, int dt, int64_t i) {
  switch (dt) {
    case kF32:
      return static_cast<const float*>(p)[i];
    case kF16:
      return __half2float(static_cast<const __half*>(p)[i]);
    case kBF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case kF64:
      return static_cast<float>(static_cast<const double*>(p)[i]);
    case kI64:
      return static_cast<float>(static_cast<const long long*>(p)[i]);
    case kI32:
      return static_cast<float>(static_cast<const int*>(p)[i]);
    case kI16:
      return static_cast<const short*>(p)[i];
    case kU16:
      return static_cast<const unsigned short*>(p)[i];
    case kI8:
      return static_cast<const signed char*>(p)[i];
    case kU32:
      return static_cast<float>(static_cast<const unsigned*>(p)[i]);
    case kU64:
      return static_cast<float>(static_cast<const unsigned long long*>(p)[i]);
    default:
      return static_cast<const unsigned char*>(p)[i];  // bool, uint8
  }
}

__device__ inline long long LoadI(const void* p, int dt, int64_t i) {
  switch (dt) {
    case kI64:
      return static_cast<const long long*>(p)[i];
    case kI32:
      return static_cast<const int*>(p)[i];
    case kI16:
      return static_cast<const short*>(p)[i];
    case kU16:
      return static_cast<const unsigned short*>(p)[i];
    case kI8:
      return static_cast<const signed char*>(p)[i];
    case kU32:
      return static_cast<const unsigned*>(p)[i];
    case kU64:
      return static_cast<long long>(static_cast<const unsigned long long*>(p)[i]);
    case kU8:
    case kBool:
      return static_cast<const unsigned char*>(p)[i];
    default:
      return static_cast<long long>(LoadF(p, dt, i));
  }
}

__device__ inline void StoreF(void* p, int dt, int64_t i, float v) {
  switch (dt) {
    case kF32:
      static_cast<float*>(p)[i] = v;
      break;
    case kF16:
      static_cast<__half*>(p)[i] = __float2half_rn(v);
      break;
    case kBF16:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
      break;
    case kF64:
      static_cast<double*>(p)[i] = v;
      break;
    default:
      break;
  }
}

__device__ inline void StoreI(void* p, int dt, int64_t i, long long v) {
  switch (dt) {
    case kI64:
      static_cast<long long*>(p)[i] = v;
      break;
    case kI32:
      static_cast<int*>(p)[i] = static_cast<int>(v);
      break;
    case kI16:
      static_cast<short*>(p)[i] = static_cast<short>(v);
      break;
    case kU16:
      static_cast<unsigned short*>(p)[i] = static_cast<unsigned short>(v);
      break;
    case kI8:
      static_cast<signed char*>(p)[i] = static_cast<signed char>(v);
      break;
    case kU32:
      static_cast<unsigned*>(p)[i] = static_cast<unsigned>(v);
      break;
    case kU64:
      static_cast<unsigned long long*>(p)[i] = static_cast<unsigned long long>(v);
      break;
    case kBool:
      static_cast<unsigned char*>(p)[i] = v != 0;
      break;
    case kU8:
      static_cast<unsigned char*>(p)[i] = static_cast<unsigned char>(v);
      break;
    default:
      StoreF(p, dt, i, static_cast<float>(v));
      break;
  }
}

// Element offsets of output element i in each of `n` operands.
__device__ inline void Offsets(const Strided& s, int64_t i, int n, int64_t* off) {
  for (int k = 0; k < n; ++k) off[k] = 0;
  for (int d = s.rank - 1; d >= 0; --d) {
    int64_t c = i % s.dims[d];
    i /= s.dims[d];
    for (int k = 0; k < n; ++k) off[k] += c * s.strides[k][d];
  }
}

inline int64_t Total(const Strided& s) {
  int64_t n = 1;
  for (int d = 0; d < s.rank; ++d) n *= s.dims[d];
  return n;
}

constexpr int kThreads = 256;

inline int Blocks(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

#define AMP_GRID_LOOP(i, n)                                                 \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); \
       i += int64_t{gridDim.x} * blockDim.x)

inline Status CheckLaunch(const char* what) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return Internal(what, ": CUDA error: ", cudaGetErrorString(err));
  return Status::Ok();
}

// amp's counter-based random generator (kernels/cpu/data.cc has the same).
__host__ __device__ inline uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace amp::cuda
