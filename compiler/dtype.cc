#include "compiler/dtype.h"

#include <array>
#include <utility>

namespace amp {
namespace {

struct DTypeInfo {
  DType type;
  std::string_view name;
  size_t size;
};

constexpr std::array<DTypeInfo, 16> kDTypes = {{
    {DType::kFloat32, "float", 4},
    {DType::kUInt8, "uint8", 1},
    {DType::kInt8, "int8", 1},
    {DType::kUInt16, "uint16", 2},
    {DType::kInt16, "int16", 2},
    {DType::kInt32, "int32", 4},
    {DType::kInt64, "int64", 8},
    {DType::kString, "string", 0},
    {DType::kBool, "bool", 1},
    {DType::kFloat16, "float16", 2},
    {DType::kFloat64, "double", 8},
    {DType::kUInt32, "uint32", 4},
    {DType::kUInt64, "uint64", 8},
    {DType::kComplex64, "complex64", 8},
    {DType::kComplex128, "complex128", 16},
    {DType::kBFloat16, "bfloat16", 2},
}};

const DTypeInfo* Find(DType t) {
  for (const auto& info : kDTypes)
    if (info.type == t) return &info;
  return nullptr;
}

}  // namespace

size_t DTypeSize(DType t) {
  const DTypeInfo* info = Find(t);
  return info ? info->size : 0;
}

std::string_view DTypeName(DType t) {
  const DTypeInfo* info = Find(t);
  return info ? info->name : "undefined";
}

std::optional<DType> DTypeFromName(std::string_view name) {
  for (const auto& info : kDTypes)
    if (info.name == name) return info.type;
  return std::nullopt;
}

bool IsSupportedDType(int32_t onnx_type) {
  // Complex numbers have a size but no arithmetic, constant folding or
  // kernel in amp: refused where they enter (an input, an initializer, a
  // Cast's target), not found later by an internal check.
  DType t = static_cast<DType>(onnx_type);
  if (t == DType::kComplex64 || t == DType::kComplex128) return false;
  const DTypeInfo* info = Find(t);
  return info != nullptr && info->size != 0;
}

std::string PrecisionName(DType t) {
  switch (t) {
    case DType::kFloat16:
      return "fp16";
    case DType::kBFloat16:
      return "bf16";
    case DType::kFloat32:
      return "fp32";
    default:
      return std::string(DTypeName(t));
  }
}

}  // namespace amp
