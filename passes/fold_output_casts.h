// fold-output-casts: a Cast of a normalization's output joins the kernel
// that computes it, which then writes that type itself, rounding its FP32
// result once as the Cast did (bit for bit the same values, one launch and
// one pass over memory fewer):
//
//   y = LayerNormalization(x, s, b)  y16 = Cast<to = 10>(y)
//     =>  y16 = ai.amp.LayerNormalization <y_type = 10> (x, s, b)
//   dx, ds, db = ai.amp.LayerNormGrad(...)  dx16 = Cast<to = 10>(dx)
//     =>  dx, ds, db, dxs, dx16 = ai.amp.LayerNormGrad <copy_type = 10> (...)
//
// LayerNormalization's Y must be read by the Cast alone; LayerNormGrad's dx
// may have other readers (the FP32 residual gradient): its copy in the
// Cast's type is a fifth output. Layout ops between the output and the Cast
// (Transpose, Reshape, Squeeze, Unsqueeze, Flatten, Identity), each read only
// by the next, commute with it: they then move the narrower values
//
//   y = LayerNormalization(x)  t = Transpose(y)  t16 = Cast<to = 10>(t)
//     =>  y16 = ai.amp.LayerNormalization <y_type = 10> (x)  t16 = Transpose(y16)
//
// Runs at specialization (the ai.amp ops are kernels of amp's backends).
// Values the step keeps or names, other than the Cast's own output (whose
// name the kernel's new output takes), stay as they are.
#pragma once

#include <set>
#include <string>

#include "passes/pass.h"

namespace amp {

class FoldOutputCasts : public Pass {
 public:
  static constexpr std::string_view kName = "fold-output-casts";
  explicit FoldOutputCasts(std::set<std::string, std::less<>> keep = {}) : keep_(std::move(keep)) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  std::set<std::string, std::less<>> keep_;  // values that must stay readable after the step
};

}  // namespace amp
