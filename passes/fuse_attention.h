// fuse-attention: scaled dot-product attention and its backward as the
// exporters and autodiff write them become two ai.amp nodes (the ops' facts
// and semantics are in ops/attention.cc), so that no [..., Sq, Sk] tensor -
// the scores, the FP32 probabilities, their half copy, their gradient - is
// kept between the forward and the backward or written to memory at all:
//
//   S = MatMulT <alpha, transB, out_type = FP32> (q, k)   [S = Add(S, mask)]
//   P = Softmax <axis = -1> (S)      P16 = Cast <to = v's type> (P)
//   O = MatMul (P16, v)
//   ...
//   dP = MatMulT <transB = 1, out_type = FP32> (dO, v)
//   dv = MatMulT <transA = 1> (P16, dO)
//   r = ReduceSum <keepdims = 1> (Mul(dP, P), [-1])
//   dS = Cast <to = q's type> (Mul(Sub(dP, r), P))
//   dq = MatMulT <alpha = g> (dS, k)   dk = MatMulT <alpha = g, transA = 1> (dS, q)
//     =>  O = ai.amp.Attention <alpha, transB> (q, k, v [, mask])
//         dq, dk, dv = ai.amp.AttentionGrad <alpha, grad_alpha = g, transB, dk_trans>
//                                           (q, k, v, dO [, mask])
//
// (without the Casts when everything is FP32; a product that stores its FP32
// accumulation in another type - fold-into-gemm's out_type - gives the fused
// node's out_type or out_types). The backward recomputes the
// probabilities from q and k. A Transpose of k's last two axes that only the
// attention reads becomes the transB flag. The CPU kernels round where the
// unfused ops round, so the fused step is the unfused one bit for bit. Only
// patterns whose intermediates nothing else reads are fused; the forward
// alone (an inference step, or a frozen attention) is left as it is.
#pragma once

#include <set>
#include <string>

#include "passes/pass.h"

namespace amp {

class FuseAttention : public Pass {
 public:
  static constexpr std::string_view kName = "fuse-attention";
  explicit FuseAttention(std::set<std::string, std::less<>> keep = {}) : keep_(std::move(keep)) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  std::set<std::string, std::less<>> keep_;  // values that must stay readable after the step
};

}  // namespace amp
