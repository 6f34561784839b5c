#include "passes/op_classes.h"

#include <algorithm>

namespace amp {

OpClassInfo ClassifyOp(const std::string& op_type, DType half_type) {
  const OpDef* def = FindOp("", op_type);
  if (!def || def->precision.op_class == OpClass::kUnlisted)
    return {OpClass::kUnlisted, "not in any list: kept in FP32"};
  OpPrecision p = def->PrecisionFor(half_type);
  return {p.op_class, p.reason};
}

const char* OpClassName(OpClass c) {
  switch (c) {
    case OpClass::kHalf:
      return "half";
    case OpClass::kFp32:
      return "fp32";
    case OpClass::kInfer:
      return "infer";
    case OpClass::kClear:
      return "clear";
    case OpClass::kNone:
      return "none";
    case OpClass::kUnlisted:
      return "unlisted";
  }
  return "?";
}

std::vector<int> ShapeLikeInputs(const std::string& op) {
  const OpDef* def = FindOp("", op);
  return def ? def->shape_inputs : std::vector<int>{};
}

int FirstHalfOpset(const std::string& op_type, DType half_type) {
  struct Support {
    const char* op;
    int fp16;
    int bf16;
  };
  static const Support kSupport[] = {
#include "passes/half_support.inc"
  };
  for (const Support& s : kSupport)
    if (op_type == s.op) return half_type == DType::kBFloat16 ? s.bf16 : s.fp16;
  return 0;
}

bool IsShapeLikeInput(const std::string& op_type, int slot) {
  const OpDef* def = FindOp("", op_type);
  return def && def->IsShapeInput(slot);
}

bool KeepsFp32Input(const std::string& op_type, int slot) {
  const OpDef* def = FindOp("", op_type);
  return def && def->IsFp32Input(slot);
}

}  // namespace amp
