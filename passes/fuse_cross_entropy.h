// fuse-cross-entropy: the gradient autodiff writes for a
// SoftmaxCrossEntropyLoss over 2-D logits (a Softmax, a OneHot of the
// labels, their difference times the loss's scale) becomes one ai.amp
// SoftmaxCrossEntropyGrad, and a half Cast of it (what the GEMMs after it
// read) its second output:
//
//   p = Softmax <axis = 1> (x)   y = OneHot <axis = 1> (labels, C, [0, 1])
//   dx = Mul (Sub (p, y), s)     dx16 = Cast <to = 10> (dx)
//     =>  dx, dx16 = ai.amp.SoftmaxCrossEntropyGrad <half_type = 10> (x, labels, s)
//
// one pass over the logits instead of four, and no [N, C] probabilities or
// one-hot tensor in memory. s is the loss's scalar scale (mean: dloss / N)
// or a per-row [N, 1] one (class weights, ignore_index); a difference with
// no Mul after it (fold-into-gemm took a constant scale into the GEMM that
// reads it) gets s = 1. The values are the
// unfused ones, bit for bit (Softmax's row arithmetic, then the same FP32
// Sub and Mul). The Softmax, the OneHot and the difference must have no
// other reader and not be graph outputs or values the step's description
// names.
//
// Then the loss the gradient belongs to (a SoftmaxCrossEntropyLoss of the
// same logits and labels, mean or sum, no class weights) joins it, reading
// the half logits before the Cast that widened them for both, and the
// scale's division by a constant (the mean's batch size) moves inside:
//
//   x32 = Cast <to = 1> (x16)   loss = SoftmaxCrossEntropyLoss (x32, labels)
//   dx, dx16 = ai.amp.SoftmaxCrossEntropyGrad (x32, labels, Div (S, N))
//     =>  loss, dx, dx16 = ai.amp.SoftmaxCrossEntropy <scale_divisor = N> (x16, labels, S)
//
// one launch instead of four, the same values bit for bit (the widening is
// exact; the loss and the gradient are the unfused kernels' arithmetic).
#pragma once

#include <set>
#include <string>

#include "passes/pass.h"

namespace amp {

class FuseCrossEntropy : public Pass {
 public:
  static constexpr std::string_view kName = "fuse-cross-entropy";
  explicit FuseCrossEntropy(std::set<std::string, std::less<>> keep = {})
      : keep_(std::move(keep)) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  std::set<std::string, std::less<>> keep_;  // values that must stay readable after the step
};

}  // namespace amp
