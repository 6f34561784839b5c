// transpose-folding: a Transpose that only swaps the last two axes of a GEMM
// operand becomes the GEMM's transpose flag, so the operand is read in place
// instead of copied (XLA's TransposeFolding; cuBLASLt and BLAS take the
// flags for free).
//
//   t = Transpose <perm = [0, 2, 1]> (x)     y = ai.amp.MatMulT <transA = 1> (x, w)
//   y = MatMul (t, w)                   =>
//   t = Transpose <perm = [1, 0]> (a)        y = Gemm <transA = 0> (a, b, c)
//   y = Gemm <transA = 1> (t, b, c)     =>
//
// MatMul becomes ai.amp MatMulT (ONNX's MatMul has no flags); Gemm keeps its
// type with the flag flipped. A Transpose with other readers stays for
// them. Specialization runs it (the exported step keeps standard ops); the
// results are the same values, the GEMMs reading the same elements.
#pragma once

#include "passes/pass.h"

namespace amp {

// `v`'s producer when it is a Transpose swapping exactly the last two of its
// rank >= 2 axes; else null (also fold-into-gemm's test).
Node* SwapLastTwo(const Value* v);

class TransposeFolding : public Pass {
 public:
  static constexpr std::string_view kName = "transpose-folding";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
