// Cast kernels, then their launchers. Each thread converts 4 elements
// (grid-stride), which keeps the kernel memory-bound on any size.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/cast.h"

namespace amp::cuda {
namespace {

template <HalfKind kKind>
__device__ uint16_t ToHalfBits(float f) {
  if constexpr (kKind == HalfKind::kFloat16)
    return __half_as_ushort(__float2half_rn(f));
  else
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

template <HalfKind kKind>
__device__ float FromHalfBits(uint16_t h) {
  if constexpr (kKind == HalfKind::kFloat16)
    return __half2float(__ushort_as_half(h));
  else
    return __bfloat162float(__ushort_as_bfloat16(h));
}

template <HalfKind kKind>
__global__ void FloatToHalfKernel(const float* __restrict__ in, uint16_t* __restrict__ out,
                                  int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    out[i] = ToHalfBits<kKind>(in[i]);
}

template <HalfKind kKind>
__global__ void HalfToFloatKernel(const uint16_t* __restrict__ in, float* __restrict__ out,
                                  int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    out[i] = FromHalfBits<kKind>(in[i]);
}

constexpr int kThreads = 256;

int Blocks(int64_t n) {
  int64_t blocks = (n + kThreads * 4 - 1) / (kThreads * 4);
  return static_cast<int>(blocks < 1 ? 1 : (blocks > 65535 ? 65535 : blocks));
}

Status Check(const char* what) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return Internal(what, ": CUDA error: ", cudaGetErrorString(err));
  return Status::Ok();
}

}  // namespace

Status CastFloatToHalf(const float* in, uint16_t* out, int64_t n, HalfKind kind, void* stream) {
  if (n <= 0) return Status::Ok();
  auto s = static_cast<cudaStream_t>(stream);
  if (kind == HalfKind::kFloat16)
    FloatToHalfKernel<HalfKind::kFloat16><<<Blocks(n), kThreads, 0, s>>>(in, out, n);
  else
    FloatToHalfKernel<HalfKind::kBFloat16><<<Blocks(n), kThreads, 0, s>>>(in, out, n);
  return Check("CastFloatToHalf");
}

Status CastHalfToFloat(const uint16_t* in, float* out, int64_t n, HalfKind kind, void* stream) {
  if (n <= 0) return Status::Ok();
  auto s = static_cast<cudaStream_t>(stream);
  if (kind == HalfKind::kFloat16)
    HalfToFloatKernel<HalfKind::kFloat16><<<Blocks(n), kThreads, 0, s>>>(in, out, n);
  else
    HalfToFloatKernel<HalfKind::kBFloat16><<<Blocks(n), kThreads, 0, s>>>(in, out, n);
  return Check("CastHalfToFloat");
}

}  // namespace amp::cuda
