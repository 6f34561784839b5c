// The pipelines that build a training step (amp_training): amp-compile's
// Training, and Lower, which the compile path runs on any model before the
// runtime sees it. Kept apart from pipelines.cc so that the runtime, which
// only specializes, links none of the training builders.
#include <memory>

#include "passes/autodiff.h"
#include "passes/dce.h"
#include "passes/expand_gradient.h"
#include "passes/fold_shapes.h"
#include "passes/pipelines.h"

namespace amp::pipelines {

PassPipeline Training(const TrainingOptions& options) {
  PassPipeline p;
  // Shape arithmetic that is already static (an exporter's Shape -> Gather ->
  // Unsqueeze chains feeding Reshape and Slice) folds first, so that the
  // gradient rules see constant slice bounds and static shapes.
  p.Add(std::make_unique<FoldShapes>());
  p.Add(std::make_unique<AttachLoss>(options.loss));
  p.Add(std::make_unique<Autodiff>(options.freeze, options.trainable));
  if (options.data_parallel) p.Add(std::make_unique<DataParallel>(*options.data_parallel));
  if (!options.gradients_only) {
    if (options.loss_scale) p.Add(std::make_unique<LossScaling>(*options.loss_scale));
    p.Add(std::make_unique<Optimizer>(options.optimizer));
  }
  p.Add(std::make_unique<Dce>());
  return p;
}

PassPipeline Lower() {
  PassPipeline p;
  p.Add(std::make_unique<ExpandGradient>());
  return p;
}

}  // namespace amp::pipelines
