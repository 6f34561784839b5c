// What the precision passes ask about an op, read from its record
// (ops/op_def.h: the class, with the reason the precision report prints, and
// the inputs never cast), plus the ONNX schemas' half support by opset
// (half_support.inc). An op amp does not know is kept in FP32 ("not in any
// list").
#pragma once

#include <string>
#include <vector>

#include "compiler/dtype.h"
#include "ops/op_def.h"

namespace amp {

struct OpClassInfo {
  OpClass op_class;
  std::string reason;
};

// The class of `op_type` when compiling for `half_type` (FP16 or BF16; BF16
// relaxes the summing reductions, which its 8-bit exponent keeps in range).
OpClassInfo ClassifyOp(const std::string& op_type, DType half_type);
const char* OpClassName(OpClass c);

// Input slots that hold shapes, indices, axes, sizes or scales: never cast,
// and values that only flow into them are shape computations.
std::vector<int> ShapeLikeInputs(const std::string& op_type);
bool IsShapeLikeInput(const std::string& op_type, int slot);

// The first default-domain opset whose ONNX schema lets `op_type` compute in
// `half_type` (from passes/half_support.inc, generated from the ONNX specs);
// 0 when no opset amp supports allows it.
int FirstHalfOpset(const std::string& op_type, DType half_type);

// Inputs that a half node keeps in FP32 (BatchNormalization's scale, bias,
// mean and variance from opset 15 on).
bool KeepsFp32Input(const std::string& op_type, int slot);

}  // namespace amp
