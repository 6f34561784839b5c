// fold-attention-views: the layout ops around an ai.amp Attention and
// AttentionGrad (fuse-attention's nodes) become the nodes' operand views -
// ops/attention.cc's view form - so that the heads split out of a packed
// projection, merged back after the attention, and the gradients' inverse
// layout ops and Concat are index arithmetic inside the two kernels, not
// copies. TorchScript's nn.MultiheadAttention, for one:
//
//   x = Add (b, MatMulT (h, w))                                  [S, B, 3E]
//   q, k, v = Reshape (Transpose (Reshape (Gather <0|1|2> (
//               Squeeze (Transpose (Unsqueeze (Reshape (x))))))))  [B, H, S, D]
//   o = ai.amp.Attention (q, k, v)        y = Reshape (Transpose (o))  [S*B, E]
//   dq, dk, dv = ai.amp.AttentionGrad (q, k, v, Transpose (Reshape (dy)))
//   dx = Reshape (Transpose (Reshape (Concat (Unsqueeze (Reshape (
//          Transpose (Reshape (dq)))), ... dk ..., ... dv ...))))  [S, B, 3E]
//     =>  y = ai.amp.Attention <dims, views, out_shapes> (x, x, x)
//         dx = ai.amp.AttentionGrad <dims, views, out_shapes> (x, x, x, dy)
//
// Each input is followed up through the layout producers its view survives
// (compiler/strided_view.h); each output down through the layout ops that
// are its only reader, into a value nothing after the step must see half
// written. The three gradients go into one output when their walks end in
// the same value through a Concat of exactly the three and their views tile
// it; otherwise each gradient stops before any Concat. The layout nodes
// nothing reads any more go. Values are the unfused step's bit for bit:
// the kernels compute the same products on the same elements, reading and
// writing them where they lie.
#pragma once

#include <set>
#include <string>

#include "passes/pass.h"

namespace amp {

class FoldAttentionViews : public Pass {
 public:
  static constexpr std::string_view kName = "fold-attention-views";
  explicit FoldAttentionViews(std::set<std::string, std::less<>> keep = {})
      : keep_(std::move(keep)) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  std::set<std::string, std::less<>> keep_;  // values that must stay readable after the step
};

}  // namespace amp
