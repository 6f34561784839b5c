// fuse-gemm-epilogue: what a GEMM's epilogue computes in the GEMM's own
// kernel (cuBLASLt's BIAS, RELU_BIAS and BGRADB epilogues) becomes part of
// an ai.amp MatMulT, one launch instead of two or three:
//
//   y = Gemm <beta = 1> (a, w, bias[N])        =>  y = MatMulT (a, w, bias)
//   y = MatMulT (a, w [, bias])  z = Relu (y)  =>  z = MatMulT <activation = "relu"> (a, w [,
//   bias]) dw = MatMulT <transA = 1> (dy, x) s = ReduceSum <axes = [0]> (Cast <to = 1> (dy))
//                                     =>  dw, s = MatMulT <transA = 1, bias_grad = "A"> (dy, x)
//
//   r = MatMulT <activation = "relu"> (...)   ...   g = Gemm (dy, w)
//   d = Where (Greater (r, 0), g, 0)
//     =>  r, mask = MatMulT <activation = "relu", relu_mask = 1> (...)
//         d = MatMulT <activation = "drelu"> (dy, w, , mask)
//
// (a Gemm without a bias, or a MatMul, takes the activation too; the mask
// is the ReLU's result's sign bits, cuBLASLt's RELU_AUX layout, a 32nd of
// the result's bytes in half). The bias
// gradient is the sum a weight-gradient GEMM reduces over: either operand's
// k axis (bias_grad "A" or "B"), also through a Reshape that flattens the
// leading axes of a 3-D gradient (the Linear of a sequence) into the k rows,
// summed over those axes; a Cast to FP32 in between is the exact widening
// of a half gradient. A folded value
// must have no other reader and must not be a graph output or a value the
// step's description names; the sum keeps its name (a Reshape restores its
// kept dims).
//
// Numerics: bit for bit on the CPU. The bias starts the FP32 accumulation as
// Gemm's C did; ReLU of the FP32 sum then one rounding is the rounding then
// ReLU; the mask is the stored result's sign, what Greater read (cuBLASLt
// takes the sign before rounding: where a positive product rounds to +0 in
// half, CUDA keeps that element's gradient and the CPU zeroes it); the bias gradient is
// ReduceSum's double sum in the same order, stored in the GEMM's output type, which must be the
// sum's. A sum of a value that only an FP32 copy of the GEMM's operand holds (the GEMM reads a half
// copy) is left alone: summing the half copy would round each term.
#pragma once

#include <set>
#include <string>

#include "passes/pass.h"

namespace amp {

class FuseGemmEpilogue : public Pass {
 public:
  static constexpr std::string_view kName = "fuse-gemm-epilogue";
  explicit FuseGemmEpilogue(std::set<std::string, std::less<>> keep = {})
      : keep_(std::move(keep)) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  std::set<std::string, std::less<>> keep_;  // values that must stay readable after the step
};

}  // namespace amp
