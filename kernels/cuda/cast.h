// Cast kernels: float32 <-> float16 / bfloat16, round to nearest even, with
// inf, NaN and subnormals handled as IEEE (and as compiler/tensor.h's CPU
// conversion does, bit for bit). 16-bit values are passed as uint16_t so that
// host code needs no CUDA headers.
#pragma once

#include <cstdint>

#include "compiler/status.h"

namespace amp::cuda {

enum class HalfKind { kFloat16, kBFloat16 };

// All pointers are device pointers; `stream` is a cudaStream_t (null: default).
Status CastFloatToHalf(const float* in, uint16_t* out, int64_t n, HalfKind kind, void* stream);
Status CastHalfToFloat(const uint16_t* in, float* out, int64_t n, HalfKind kind, void* stream);

}  // namespace amp::cuda
