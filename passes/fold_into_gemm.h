// fold-into-gemm: the ops around a GEMM that its epilogue or its operand
// order can do for free become part of it (ai.amp MatMulT's alpha, out_type
// and flags; what cuBLASLt's scale and output type offer):
//
//   y = MatMulT (a, b)  z = Cast <to = 1> (y)    =>  z = MatMulT <out_type = 1> (a, b)
//   y = MatMulT (a, b)  z = Transpose (y)        =>  z = MatMulT <transA = 1, transB = 1> (b, a)
//   y = MatMulT (a, b)  z = Mul (y, 0.125)       =>  z = MatMulT <alpha = 0.125> (a, b)
//   s = Mul (a, 0.125)  y = MatMulT (s, b)       =>  y = MatMulT <alpha = 0.125> (a, b)
//
// (Transpose: one swapping the last two axes, as (AB)^T = B^T A^T; Mul: by a
// float constant with one element; MatMul and a Gemm without a bias become
// MatMulT when something folds into them.) A value folded away must have no
// other reader and must not be a graph output or a value the step's
// description names.
//
// Numerics: the GEMM's FP32 accumulation is stored once in the final type,
// where the unfused ops rounded it to the GEMM's type first (a half GEMM
// then a Cast to FP32 is more precise by up to half an fp16 ulp; a scale is
// applied before that rounding, exact for powers of two); a transposed
// product sums the same terms, in an order BLAS may choose. Specialization
// runs it after transpose-folding; the exported step keeps standard ops.
#pragma once

#include "passes/pass.h"

namespace amp {

class FoldIntoGemm : public Pass {
 public:
  static constexpr std::string_view kName = "fold-into-gemm";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
