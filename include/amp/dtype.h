// Element types, numbered as ONNX's TensorProto.DataType (so a number read
// from an ONNX file or a DLPack/NumPy bridge maps directly). Part of the
// public API; amp's compiler uses the same enum.
#pragma once

#include <cstdint>

namespace amp {

enum class DType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kComplex64 = 14,
  kComplex128 = 15,
  kBFloat16 = 16,
};

}  // namespace amp
