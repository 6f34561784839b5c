// Precision classes of ONNX ops for mixed precision, with the reason for
// each entry (the reason is what the precision report prints). In the spirit
// of TensorFlow's auto_mixed_precision lists and PyTorch autocast's op lists.
//
//   kHalf  : runs in FP16/BF16 (tensor-core GEMMs and convolutions)
//   kFp32  : stays FP32 (range or precision would suffer in half)
//   kInfer : half only between half producers and consumers
//   kClear : takes its neighbours' precision (data movement, exact ops)
//   kNone  : not painted (type-agnostic readers such as Shape, or ops with
//            no float data such as ConstantOfShape)
// An op that is not in the table is kept in FP32 (rule "not in any list").
#pragma once

#include <string>
#include <vector>

#include "compiler/dtype.h"

namespace amp {

enum class OpClass { kHalf, kFp32, kInfer, kClear, kNone, kUnlisted };

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
