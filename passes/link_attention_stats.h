// link-attention-stats: an attention's backward reads what its forward
// computed - O and each query row's softmax logsumexp - instead of
// recomputing them, for a backend whose fused attention backward takes them
// (cuDNN's: P = exp(S - stats), rowsum(dP * P) = rowsum(dO * O)):
//
//   o = ai.amp.Attention(q, k, v [, mask])
//   dq, dk, dv = ai.amp.AttentionGrad(q, k, v, dO [, mask])
//     =>  o, st = ai.amp.Attention(q, k, v [, mask])
//         dq, dk, dv = ai.amp.AttentionGrad(q, k, v, dO, [mask], o, st)
//
// The forward is the Attention of the same q, k and v values (and the same
// views of them, in the view form), the same mask and scale, and of the same
// form as the backward; in the view form the backward's views gain O's view
// in the forward's output. The statistics are [batch..., Sq] float32, kept
// from the forward to the backward; O is the forward's output, which the
// backward of the projection after it reads anyway. A backward with no such
// forward (none, or two candidates) is left as it is.
//
// Runs at specialization after fold-attention-views, for backends that ask
// for it (KernelSupport::AttentionGradReadsForward).
#pragma once

#include "passes/pass.h"

namespace amp {

class LinkAttentionStats : public Pass {
 public:
  static constexpr std::string_view kName = "link-attention-stats";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
