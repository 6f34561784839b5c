// The one explicit list of passes (no static self-registration, which linkers
// drop). Tools build pipelines from pass names through it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "passes/attach_loss.h"
#include "passes/loss_scaling.h"
#include "passes/optimizer.h"
#include "passes/pass.h"
#include "passes/precision_policy.h"

namespace amp {

struct PassOptions {
  std::map<std::string, int64_t> dim_bindings;  // for bind-dims
  PrecisionPolicy precision;                    // for paint-precision
  LossOptions loss;                             // for attach-loss
  std::string freeze;                           // for autodiff: regex of frozen parameters
  OptimizerOptions optimizer;                   // for optimizer
  LossScaleOptions loss_scale;                  // for loss-scaling
};

StatusOr<std::unique_ptr<Pass>> CreatePass(const std::string& name, const PassOptions& options);
std::vector<std::string> RegisteredPassNames();
// "a,b,c" -> pipeline; an unknown name is an error listing the known ones.
StatusOr<PassPipeline> BuildPipeline(const std::string& names, const PassOptions& options);
// The pass list for an optimization level (O0: none).
std::string PipelineForLevel(OptLevel level);
// The passes that build a training step (loss, backward, optimizer).
inline constexpr const char* kTrainingPipeline = "attach-loss,autodiff,optimizer,dce";

}  // namespace amp
