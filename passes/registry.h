// The one explicit list of passes (no static self-registration, which linkers
// drop): amp-opt builds pipelines from the names a user gives through it, and
// --print-after / --disable-pass check names against it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "passes/attach_loss.h"
#include "passes/data_parallel.h"
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
  std::string trainable;                        // for autodiff: regex of the only trained ones
  OptimizerOptions optimizer;                   // for optimizer
  LossScaleOptions loss_scale;                  // for loss-scaling
  DataParallelOptions data_parallel;            // for data-parallel
};

StatusOr<std::unique_ptr<Pass>> CreatePass(const std::string& name, const PassOptions& options);
// Every pass's name, sorted (from the same table CreatePass reads).
std::vector<std::string> RegisteredPassNames();
// OK for a registered name; else an error listing the known ones.
Status CheckPassName(std::string_view name);
// "a,b,c" -> pipeline, for amp-opt's --passes (a user's list). amp's own
// pipelines are typed values in passes/pipelines.h.
StatusOr<PassPipeline> BuildPipeline(const std::string& names, const PassOptions& options);

}  // namespace amp
