// paint-precision: decides, for every node that computes on FP32 data,
// whether it runs in half precision (FP16/BF16) or in FP32. It only decides:
// each painted node gets a typed PrecisionDecision (its compute type and the
// rule that chose it, compiler/ir.h), and insert-casts then rewrites the
// graph (the split of XLA's BFloat16Propagation and FloatNormalization).
//
// O1, over the whole graph, in the spirit of TensorFlow's multi-pass painter:
//   1. seeds: the half list is half, the fp32 list and unlisted ops are FP32,
//      overrides first (--fp32-nodes, --fp32-ops, --half-ops);
//   2. FP32 spreads upstream through infer and clear ops whose consumers are
//      all FP32 (so a bias Add before a Softmax stays FP32 and the cast sits
//      right after the MatMul);
//   3. infer ops turn half when all their inputs are half (or constants and
//      parameters, which are converted once) and clear ops follow a half
//      input; clear ops whose consumers are all half follow them;
//   4. an infer op left with no half consumer goes back to FP32 (half only
//      *between* halves); everything still undecided is FP32.
// O2 makes infer and clear ops half; O3 makes everything half.
//
// Never painted: shape computations (values that only feed shape, index or
// axes inputs, and values computed only from shapes and constants) and
// type-agnostic readers such as Shape. Integer data is never touched.
#pragma once

#include "passes/pass.h"
#include "passes/precision_policy.h"

namespace amp {

class PaintPrecision : public Pass {
 public:
  static constexpr std::string_view kName = "paint-precision";
  explicit PaintPrecision(PrecisionPolicy policy) : policy_(std::move(policy)) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  PrecisionPolicy policy_;
};

// A Transpose that moves a batch axis (perm[i] != i for some i < rank - 2)
// whose result - or `read`, a value made from it by layout ops and Casts -
// a default-domain MatMul reads: the pattern onnxruntime 1.32 crashes on at
// ORT_ENABLE_ALL in half (docs/ONNXRUNTIME.md). paint-precision keeps such
// a Transpose FP32; fold-casts leaves its Casts.
bool IsBatchTransposeIntoMatMul(const Node& transpose, const Value* read = nullptr);

}  // namespace amp
