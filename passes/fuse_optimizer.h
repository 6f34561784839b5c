// fuse-optimizer: replaces the per-parameter Adam/AdamW update that the
// optimizer pass writes in standard ops (about 20 nodes per parameter) by one
// ai.amp FusedAdam node over every parameter, which a backend runs as one
// multi-tensor kernel (llm.c's AdamW: read FP32 master weights and moments,
// write them back in the same pass). The node computes exactly what the
// standard ops compute, in the same FP32 operation order, including the
// skip on non-finite gradients.
//
// The pass finds each parameter's update from the step's update bindings and
// checks the structure the optimizer pass wrote; anything else (SGD, a graph
// edited by hand) is left as it is (no change). The hyperparameters come from
// the "amp.optimizer" metadata. Runtimes run it before planning; the
// exported step keeps standard ops.
#pragma once

#include "passes/pass.h"

namespace amp {

class FuseOptimizer : public Pass {
 public:
  static constexpr std::string_view kName = "fuse-optimizer";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
