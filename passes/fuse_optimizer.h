// fuse-optimizer: replaces the per-parameter Adam/AdamW update that the
// optimizer pass writes in standard ops (about 20 nodes per parameter) by one
// ai.amp FusedAdam node over every parameter (and SGD's, with weight decay,
// momentum, dampening and Nesterov, by one ai.amp FusedSgd), which a backend runs as one
// multi-tensor kernel (llm.c's AdamW: read FP32 master weights and moments,
// write them back in the same pass). The node computes exactly what the
// standard ops compute, in the same FP32 operation order, including the
// skip on non-finite gradients.
//
// What to fuse comes from the step's typed description
// (TrainingInfo::optimizer, written by the optimizer pass): the kind and
// hyperparameters, the lr input, and each parameter's master weight,
// gradient and moments; their new values come from the update bindings. The
// graph's formula is never matched, so changing it cannot silently stop
// fusion: a description the graph contradicts is an error. Steps without an
// optimizer are left as they are. Specialization runs it before
// planning (on request); the exported step keeps standard ops.
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
