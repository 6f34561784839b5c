// fuse-loss-scale: dynamic loss scaling's update of the scale and its growth
// tracker (the Add, Equal, Mul, IsInf and Where ops loss-scaling writes,
// with Max/Min for a clamp) becomes one ai.amp LossScaleUpdate node:
//
//   S' = Where(F, S * backoff, Where(grow, Where(IsInf(S * growth), S, S * growth), S))
//   T' = Where(F, 0, Where(grow, 0, T + 1))      grow = (T + 1 == interval)
//     =>  S', T' = ai.amp.LossScaleUpdate <growth_factor, backoff_factor,
//                                          growth_interval[, min_scale, max_scale]> (S, T, F)
//
// one launch that writes both in place, as PyTorch's _amp_update_scale_
// does, instead of a chain of scalar kernels and two copies after the step.
// The optimizer's step count N, which a skipped step keeps (the optimizer
// pass's N' = Where (F, N, N + 1)), is updated by the same launch:
//
//     =>  S', T', N' = ai.amp.LossScaleUpdate <...> (S, T, F, N)
// What to fuse comes from the step's typed description (the scale, the
// tracker, the found-inf flag, their updates and loss_scale_rule); the
// formula is never matched. The values are the same, bit for bit (the same
// float32 operations). Steps with a static scale or none are left alone.
#pragma once

#include "passes/pass.h"

namespace amp {

class FuseLossScale : public Pass {
 public:
  static constexpr std::string_view kName = "fuse-loss-scale";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
