#include "passes/registry.h"

#include <algorithm>

#include "passes/autodiff.h"
#include "passes/batch_casts.h"
#include "passes/bind_dims.h"
#include "passes/data_parallel.h"
#include "passes/dce.h"
#include "passes/elide_dropout.h"
#include "passes/expand_gradient.h"
#include "passes/fold_attention_views.h"
#include "passes/fold_casts.h"
#include "passes/fold_into_gemm.h"
#include "passes/fold_output_casts.h"
#include "passes/fold_shapes.h"
#include "passes/fuse_attention.h"
#include "passes/fuse_conv_weight_grad.h"
#include "passes/fuse_cross_entropy.h"
#include "passes/fuse_elementwise.h"
#include "passes/fuse_gemm_epilogue.h"
#include "passes/fuse_loss_scale.h"
#include "passes/fuse_max_pool_grad.h"
#include "passes/fuse_norm_grad.h"
#include "passes/fuse_optimizer.h"
#include "passes/fuse_unscale.h"
#include "passes/guard_nonfinite.h"
#include "passes/infer_shapes.h"
#include "passes/insert_casts.h"
#include "passes/link_attention_stats.h"
#include "passes/loss_scaling.h"
#include "passes/paint_precision.h"
#include "passes/rematerialize.h"
#include "passes/sink_nodes.h"
#include "passes/train_mode.h"
#include "passes/transpose_folding.h"

namespace amp {
namespace {

// The one list: each pass's name and how to make it from the options. Both
// CreatePass and RegisteredPassNames read it, so they cannot disagree.
struct Entry {
  std::string_view name;
  std::unique_ptr<Pass> (*make)(const PassOptions&);
};

template <typename P>
std::unique_ptr<Pass> Make(const PassOptions&) {
  return std::make_unique<P>();
}

const Entry kPasses[] = {
    {AttachLoss::kName,
     [](const PassOptions& o) -> std::unique_ptr<Pass> {
       return std::make_unique<AttachLoss>(o.loss);
     }},
    {Autodiff::kName,
     [](const PassOptions& o) -> std::unique_ptr<Pass> {
       return std::make_unique<Autodiff>(o.freeze, o.trainable);
     }},
    {BatchCasts::kName, Make<BatchCasts>},
    {BindDims::kName,
     [](const PassOptions& o) -> std::unique_ptr<Pass> {
       return std::make_unique<BindDims>(o.dim_bindings);
     }},
    {DataParallel::kName,
     [](const PassOptions& o) -> std::unique_ptr<Pass> {
       return std::make_unique<DataParallel>(o.data_parallel);
     }},
    {Dce::kName, Make<Dce>},
    {ElideDropout::kName, Make<ElideDropout>},
    {TrainMode::kName, Make<TrainMode>},
    {ExpandGradient::kName, Make<ExpandGradient>},
    {FoldAttentionViews::kName, Make<FoldAttentionViews>},
    {FoldOutputCasts::kName, Make<FoldOutputCasts>},
    {LinkAttentionStats::kName, Make<LinkAttentionStats>},
    {GuardNonfinite::kName, Make<GuardNonfinite>},
    {FoldCasts::kName, Make<FoldCasts>},
    {FoldIntoGemm::kName, Make<FoldIntoGemm>},
    {FoldShapes::kName, Make<FoldShapes>},
    {FuseAttention::kName, Make<FuseAttention>},
    {FuseConvWeightGrad::kName, Make<FuseConvWeightGrad>},
    {FuseCrossEntropy::kName, Make<FuseCrossEntropy>},
    {FuseElementwise::kName, Make<FuseElementwise>},
    {FuseGemmEpilogue::kName, Make<FuseGemmEpilogue>},
    {FuseLossScale::kName, Make<FuseLossScale>},
    {FuseMaxPoolGrad::kName, Make<FuseMaxPoolGrad>},
    {FuseNormGrad::kName, Make<FuseNormGrad>},
    {FuseOptimizer::kName, Make<FuseOptimizer>},
    {FuseUnscale::kName, Make<FuseUnscale>},
    {Rematerialize::kName, Make<Rematerialize>},
    {SinkNodes::kName, Make<SinkNodes>},
    {TransposeFolding::kName, Make<TransposeFolding>},
    {InferShapes::kName, Make<InferShapes>},
    {InsertCasts::kName, Make<InsertCasts>},
    {LossScaling::kName,
     [](const PassOptions& o) -> std::unique_ptr<Pass> {
       return std::make_unique<LossScaling>(o.loss_scale);
     }},
    {Optimizer::kName,
     [](const PassOptions& o) -> std::unique_ptr<Pass> {
       return std::make_unique<Optimizer>(o.optimizer);
     }},
    {PaintPrecision::kName,
     [](const PassOptions& o) -> std::unique_ptr<Pass> {
       return std::make_unique<PaintPrecision>(o.precision);
     }},
};

}  // namespace

Status CheckPassName(std::string_view name) {
  for (const Entry& e : kPasses)
    if (e.name == name) return Status::Ok();
  std::string known;
  for (const auto& n : RegisteredPassNames()) known += (known.empty() ? "" : ", ") + n;
  return InvalidArgument("unknown pass '", name, "' (known passes: ", known, ")");
}

StatusOr<std::unique_ptr<Pass>> CreatePass(const std::string& name, const PassOptions& options) {
  for (const Entry& e : kPasses)
    if (e.name == name) return e.make(options);
  AMP_RETURN_IF_ERROR(CheckPassName(name));
  return Internal("pass '", name, "' is listed but cannot be made");
}

std::vector<std::string> RegisteredPassNames() {
  std::vector<std::string> out;
  for (const Entry& e : kPasses) out.emplace_back(e.name);
  std::sort(out.begin(), out.end());
  return out;
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
