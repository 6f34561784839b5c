// fuse-max-pool-grad: MaxPool's gradient as autodiff writes it - a scatter of
// the output gradient onto zeros at MaxPool's int64 indices - becomes one
// ai.amp MaxPoolGrad that finds each window's maximum again in x:
//
//   y, i = MaxPool <attrs> (x)   z = ConstantOfShape <value = 0> (numel(x))
//   s = ScatterElements <axis = 0, reduction = "add"> (z, Reshape (i, [-1]), Reshape (dy, [-1]))
//   dx = Reshape (s, shape(x))
//     =>  y = MaxPool <attrs> (x)   dx = ai.amp.MaxPoolGrad <attrs> (dy, x)
//
// The forward no longer writes the indices (8 bytes per output element, kept
// from the forward to the backward: ResNet's stem holds 196 MiB of them at
// batch 128) and the backward reads x, which the ReLU before the pool keeps
// alive anyway (dy may be wider than x: O1 sums the gradient in FP32). The values are the unfused
// ones, bit for bit (the same first-maximum rule and the same additions in order). The scatter's
// operands must have no other reader and not be graph outputs or values the
// step's description names; MaxPool keeps its indices if anything else
// reads them.
#pragma once

#include <set>
#include <string>

#include "passes/pass.h"

namespace amp {

class FuseMaxPoolGrad : public Pass {
 public:
  static constexpr std::string_view kName = "fuse-max-pool-grad";
  explicit FuseMaxPoolGrad(std::set<std::string, std::less<>> keep = {}) : keep_(std::move(keep)) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  std::set<std::string, std::less<>> keep_;  // values that must stay readable after the step
};

}  // namespace amp
