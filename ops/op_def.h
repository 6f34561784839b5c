// Each op amp knows, as one record: what the ONNX file may say (arity), what
// the compiler infers (types and shapes), how mixed precision treats it (its
// class and the inputs never cast), and how autodiff differentiates it (its
// gradient rule, or why it has none). The records are split by family, one
// file each (ops/elementwise.cc, ops/gemm.cc, ...), and gathered by one
// explicit list in ops/registry.cc; adding an op is one record in its
// family's file, a CPU kernel, and a golden test. What each backend runs is
// the backends' own table (runtime/backend.h: KernelOpNames), checked
// against these records by tests/unit/op_consistency_test.cc.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "compiler/status.h"
#include "ops/inference_context.h"

namespace amp {

class GradBuilder;  // ops/grad_builder.h

using InferFn = Status (*)(InferenceContext&);
using GradFn = Status (*)(GradBuilder&);
// Output/input index pairs of a node that may share bytes: the kernel reads
// each element of the input before it writes that element of the output.
using InplaceFn = std::vector<std::pair<int, int>> (*)(const Node&);
// Multiply-adds times two of a node whose shapes are static (matrix ops:
// what runs on the matrix engines).
using FlopsFn = int64_t (*)(const Node&);

// Precision classes for mixed precision, in the spirit of TensorFlow's
// auto_mixed_precision lists and PyTorch autocast's op lists:
//   kHalf  : runs in FP16/BF16 (tensor-core GEMMs and convolutions)
//   kFp32  : stays FP32 (range or precision would suffer in half)
//   kInfer : half only between half producers and consumers
//   kClear : takes its neighbours' precision (data movement, exact ops)
//   kNone  : not painted (type-agnostic readers such as Shape, ops with no
//            float data, ops that are decided elsewhere)
// kUnlisted is what an op amp does not know gets: kept in FP32.
enum class OpClass { kHalf, kFp32, kInfer, kClear, kNone, kUnlisted };

struct OpPrecision {
  OpClass op_class = OpClass::kUnlisted;
  const char* reason = nullptr;  // what the precision report prints
};

struct OpDef {
  std::string_view domain;  // "" (ai.onnx), "ai.onnx.preview.training" or "ai.amp"
  std::string_view op_type;
  struct Arity {
    int min_inputs = 0, max_inputs = 0;  // max -1: variadic
    int min_outputs = 0, max_outputs = 0;
  } arity;
  InferFn infer = nullptr;

  // ---- mixed precision ----
  OpPrecision precision;
  OpPrecision bf16_precision;     // when compiling for bfloat16, if it differs
  std::vector<int> shape_inputs;  // shapes, indices, axes, sizes, scales: never cast
  std::vector<int> fp32_inputs;   // inputs a half node keeps in FP32

  // ---- autodiff ----
  GradFn grad = nullptr;            // builds the input gradients from the output gradients
  const char* no_grad = nullptr;    // why there is no rule; set exactly when grad is null
  std::vector<int> nondiff_inputs;  // inputs that never get a gradient
  bool grad_reads_shapes = true;    // the rule reads ranks or dims (autodiff checks them known)

  // ---- cost (codegen/cost_model.h) ----
  // Matrix ops give their flops; every other op is costed at the vector
  // rate, one operation per element of its inputs or of its outputs,
  // whichever are more.
  FlopsFn matrix_flops = nullptr;
  // Ops whose flops are known but run on the vector units (the fused
  // attention kernels: FP32 arithmetic, no matrix engines).
  FlopsFn vector_flops = nullptr;
  // Kernel launches one node takes (an op whose lowering runs one kernel
  // after another: AttentionGrad's query pass, then its key pass).
  int launches = 1;
  // Nodes of an op with vector_flops that the CUDA backend runs on the
  // matrix engines through a library instead (cuDNN's fused attention, where
  // its layout fits), and the kernels the library launches for one.
  bool (*cuda_library)(const Node&) = nullptr;
  int cuda_library_launches = 1;
  // Outputs that may be written over an input (codegen updates state in
  // place through them).
  InplaceFn inplace = nullptr;

  bool IsShapeInput(int slot) const;
  bool IsFp32Input(int slot) const;
  bool IsNonDifferentiableInput(int slot) const;
  // The class when compiling for `half_type` (FP16 or BF16).
  OpPrecision PrecisionFor(DType half_type) const;
};

// The record of an op ("" and "ai.onnx" are the default domain), or null.
const OpDef* FindOp(std::string_view domain, std::string_view op_type);
// Every record, in the registry's order.
const std::vector<OpDef>& AllOps();
// The default-domain ops, sorted (amp-compile --list-ops).
std::vector<std::string_view> SupportedOps();

}  // namespace amp
