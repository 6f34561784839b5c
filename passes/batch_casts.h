// batch-casts: the Casts of values that exist before the step's first node
// (the parameters' half copies of a mixed-precision step, the inputs) become
// one ai.amp MultiCast per target type, a multi-tensor kernel: one launch
// instead of one per parameter.
//
//   wh = Cast <to = 10> (w)            wh, vh = ai.amp.MultiCast <to = 10> (w, v)
//   ... MatMul (x, wh)           =>    ... MatMul (x, wh)
//   vh = Cast <to = 10> (v)            ...
//
// The node takes the first Cast's place, so a half copy is made before its
// first reader, as before; the values are the Casts' own (each rounded once).
// Casts fused into an elementwise chain are not touched (fuse-elementwise
// runs first), nor Casts of values computed in the step.
#pragma once

#include "passes/pass.h"

namespace amp {

class BatchCasts : public Pass {
 public:
  static constexpr std::string_view kName = "batch-casts";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
