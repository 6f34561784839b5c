// Element types, numbered as ONNX's TensorProto.DataType so that import and
// export are the identity on them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "amp/dtype.h"  // DType

namespace amp {

// Bytes per element; 0 for types amp cannot hold in memory (string, undefined).
size_t DTypeSize(DType t);
// The name ONNX's textual syntax uses ("float", "float16", "int64", ...).
std::string_view DTypeName(DType t);
// "fp16", "bf16", "fp32" for the float types precision passes decide
// between; DTypeName otherwise.
std::string PrecisionName(DType t);
std::optional<DType> DTypeFromName(std::string_view name);
// A known TensorProto.DataType number that amp can represent.
bool IsSupportedDType(int32_t onnx_type);

inline bool IsFloat(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16 ||
         t == DType::kFloat64;
}
inline bool IsHalf(DType t) { return t == DType::kFloat16 || t == DType::kBFloat16; }
inline bool IsInteger(DType t) {
  switch (t) {
    case DType::kUInt8:
    case DType::kInt8:
    case DType::kUInt16:
    case DType::kInt16:
    case DType::kInt32:
    case DType::kInt64:
    case DType::kUInt32:
    case DType::kUInt64:
      return true;
    default:
      return false;
  }
}

}  // namespace amp
