#include "passes/registry.h"

#include "passes/autodiff.h"
#include "passes/dce.h"
#include "passes/expand_gradient.h"
#include "passes/fold_casts.h"
#include "passes/fold_shapes.h"
#include "passes/fuse_optimizer.h"
#include "passes/fuse_unscale.h"
#include "passes/infer_shapes.h"
#include "passes/insert_casts.h"
#include "passes/loss_scaling.h"
#include "passes/paint_precision.h"

namespace amp {

StatusOr<std::unique_ptr<Pass>> CreatePass(const std::string& name, const PassOptions& options) {
  if (name == DeadCodeElimination::kName) return std::unique_ptr<Pass>(new DeadCodeElimination());
  if (name == FoldShapes::kName) return std::unique_ptr<Pass>(new FoldShapes());
  if (name == InferShapesPass::kName) return std::unique_ptr<Pass>(new InferShapesPass());
  if (name == BindDims::kName) return std::unique_ptr<Pass>(new BindDims(options.dim_bindings));
  if (name == PaintPrecision::kName)
    return std::unique_ptr<Pass>(new PaintPrecision(options.precision));
  if (name == InsertCasts::kName) return std::unique_ptr<Pass>(new InsertCasts());
  if (name == FoldCasts::kName) return std::unique_ptr<Pass>(new FoldCasts());
  if (name == AttachLoss::kName) return std::unique_ptr<Pass>(new AttachLoss(options.loss));
  if (name == Autodiff::kName) return std::unique_ptr<Pass>(new Autodiff(options.freeze));
  if (name == ExpandGradient::kName) return std::unique_ptr<Pass>(new ExpandGradient());
  if (name == FuseOptimizer::kName) return std::unique_ptr<Pass>(new FuseOptimizer());
  if (name == FuseUnscale::kName) return std::unique_ptr<Pass>(new FuseUnscale());
  if (name == LossScaling::kName) return std::unique_ptr<Pass>(new LossScaling(options.loss_scale));
  if (name == AddOptimizer::kName)
    return std::unique_ptr<Pass>(new AddOptimizer(options.optimizer));
  std::string known;
  for (const auto& n : RegisteredPassNames()) known += (known.empty() ? "" : ", ") + n;
  return InvalidArgument("unknown pass '", name, "' (known passes: ", known, ")");
}

std::vector<std::string> RegisteredPassNames() {
  return {std::string(AttachLoss::kName),     std::string(Autodiff::kName),
          std::string(BindDims::kName),       std::string(DeadCodeElimination::kName),
          std::string(ExpandGradient::kName), std::string(FuseOptimizer::kName),
          std::string(FuseUnscale::kName),    std::string(FoldCasts::kName),
          std::string(FoldShapes::kName),     std::string(InferShapesPass::kName),
          std::string(InsertCasts::kName),    std::string(LossScaling::kName),
          std::string(AddOptimizer::kName),   std::string(PaintPrecision::kName)};
}

StatusOr<PassPipeline> BuildPipeline(const std::string& names, const PassOptions& options) {
  PassPipeline pipeline;
  size_t start = 0;
  while (start <= names.size()) {
    size_t comma = names.find(',', start);
    std::string name =
        names.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!name.empty()) {
      AMP_ASSIGN_OR_RETURN(auto pass, CreatePass(name, options));
      pipeline.Add(std::move(pass));
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return pipeline;
}

}  // namespace amp

namespace amp {

std::string PipelineForLevel(OptLevel level) {
  if (level == OptLevel::kO0) return "";
  return "fold-shapes,dce,paint-precision,insert-casts,fold-casts,dce";
}

}  // namespace amp
