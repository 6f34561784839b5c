// loss-scaling: GradScaler's semantics in the graph, between autodiff and
// the optimizer. The backward pass starts from the loss scale S instead of 1
// (so every gradient is S times larger, which keeps small FP16 gradients
// from flushing to zero); the gradients are unscaled by 1/S in FP32; one
// finiteness check covers all of them; on inf/NaN the optimizer's update is
// skipped (parameters, moments and step count keep their values) and S is
// multiplied by the backoff factor, and after `growth_interval` clean steps
// in a row S grows by the growth factor (if that stays finite). S and the
// growth tracker are state. A static scale keeps S fixed but still skips
// non-finite steps. The loss output stays unscaled.
#pragma once

#include "passes/pass.h"

namespace amp {

struct LossScaleOptions {
  bool dynamic = true;
  float init_scale = 65536.0f;
  float growth_factor = 2.0f;
  float backoff_factor = 0.5f;
  int64_t growth_interval = 2000;
  float min_scale = 0.0f;  // 0: no clamp
  float max_scale = 0.0f;  // 0: no clamp
};

class LossScaling : public Pass {
 public:
  static constexpr std::string_view kName = "loss-scaling";
  explicit LossScaling(LossScaleOptions options) : options_(options) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  LossScaleOptions options_;
};

}  // namespace amp
