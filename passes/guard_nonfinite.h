// guard-nonfinite: a training step without loss scaling skips its own
// update when its loss or a gradient is not finite, the way a loss-scaled
// step skips on its found-inf flag:
//
//   p' = update(p, g)   (every state's update)
//     =>  bad = ai.amp.AnyNonFinite(loss, g...)
//         p' = Where(bad, p, update(p, g))      skip_step = bad
//
// so the runtime need not keep the old state to restore it (the update is
// then written in place, and fuse-optimizer's kernel reads the flag) nor
// scan the new state after the step. What runtime::Executor's non-finite
// guard (NonFinitePolicy kError or kSkip) asks of specialization, for a
// backend with the AnyNonFinite kernel; a step that has a skip flag already
// (loss scaling) is left alone.
#pragma once

#include "passes/pass.h"

namespace amp {

class GuardNonfinite : public Pass {
 public:
  static constexpr std::string_view kName = "guard-nonfinite";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
