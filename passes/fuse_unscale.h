// fuse-unscale: replaces loss scaling's per-gradient unscale and finiteness
// probes (Mul by 1/S, Mul by 0, ReduceSum, then Sum and IsNaN over all of
// them) by one ai.amp UnscaleCheck node: every gradient times 1/S, and one
// flag that is true when any result is not finite - one multi-tensor pass
// over the gradients instead of four ops per gradient. 1/S, a Reciprocal of
// the scale S, is taken inside (invert_scale: the node reads S). The
// results are the same values, bit for bit. Steps without loss scaling are
// left as they are.
#pragma once

#include "passes/pass.h"

namespace amp {

class FuseUnscale : public Pass {
 public:
  static constexpr std::string_view kName = "fuse-unscale";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
