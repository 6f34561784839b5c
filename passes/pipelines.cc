// The pipelines the runtime's specialization needs (amp_passes); Training and
// Lower, which build the step, are in training_pipelines.cc (amp_training).
#include "passes/pipelines.h"

#include <memory>

#include "passes/batch_casts.h"
#include "passes/bind_dims.h"
#include "passes/dce.h"
#include "passes/elide_dropout.h"
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
#include "passes/paint_precision.h"
#include "passes/rematerialize.h"
#include "passes/sink_nodes.h"
#include "passes/transpose_folding.h"

namespace amp::pipelines {

PassPipeline ForLevel(const PrecisionPolicy& policy) {
  PassPipeline p;
  if (policy.level == OptLevel::kO0) return p;
  p.Add(std::make_unique<FoldShapes>());
  p.Add(std::make_unique<Dce>());
  p.Add(std::make_unique<PaintPrecision>(policy));
  p.Add(std::make_unique<InsertCasts>());
  p.Add(std::make_unique<FoldCasts>());
  p.Add(std::make_unique<Dce>());
  return p;
}

PassPipeline BindShapes(const std::map<std::string, int64_t>& bindings) {
  PassPipeline p;
  p.Add(std::make_unique<BindDims>(bindings));
  p.Add(std::make_unique<FoldShapes>());
  p.Add(std::make_unique<Dce>());
  return p;
}

PassPipeline Specialize(const SpecializeOptions& options) {
  PassPipeline p;
  // A step without loss scaling that must not apply a non-finite update
  // skips itself, before its optimizer is fused (which then reads the flag).
  if (options.guard_nonfinite) p.Add(std::make_unique<GuardNonfinite>());
  // With fuse_optimizer, one multi-tensor node replaces the per-gradient
  // unscale and another the per-parameter Adam update; then the shape
  // arithmetic folds away.
  if (options.fuse_optimizer) {
    p.Add(std::make_unique<FuseUnscale>());
    p.Add(std::make_unique<FuseOptimizer>());
  }
  // Dynamic loss scaling's update of its scale and tracker: one node.
  if (options.fuse_loss_scale) p.Add(std::make_unique<FuseLossScale>());
  p.Add(std::make_unique<TransposeFolding>());
  p.Append(BindShapes(options.bindings));
  // Once every shape is static: Dropouts that drop nothing go; scales,
  // casts and transposes into the GEMMs, then elementwise chains into
  // single kernels.
  p.Add(std::make_unique<ElideDropout>());
  p.Add(std::make_unique<FoldIntoGemm>());
  // Attention and its backward into two kernels that keep no scores, which
  // read and write their operands where the layout ops around them put them.
  if (options.fuse_attention) {
    p.Add(std::make_unique<FuseAttention>(options.keep));
    // (The Casts around a gradient's head transposes, left for onnxruntime's
    // sake while a MatMul read them, go now that the attention does.)
    p.Add(std::make_unique<FoldCasts>());
    p.Add(std::make_unique<FoldAttentionViews>(options.keep));
    // The backward reads the forward's O and softmax statistics, where the
    // backend's kernel takes them.
    if (options.link_attention_stats) p.Add(std::make_unique<LinkAttentionStats>());
  }
  if (options.fuse_norm_grad) p.Add(std::make_unique<FuseNormGrad>());
  // The half copies of LayerNorm's outputs and of its gradient's, written by
  // those kernels.
  if (options.fold_output_casts) p.Add(std::make_unique<FoldOutputCasts>(options.keep));
  // Biases, ReLUs and bias gradients into the GEMMs' epilogues.
  if (options.fuse_gemm_epilogue) p.Add(std::make_unique<FuseGemmEpilogue>(options.keep));
  // The loss's gradient in one pass over the logits.
  if (options.fuse_cross_entropy) p.Add(std::make_unique<FuseCrossEntropy>(options.keep));
  // Convolutions' weight gradients without their transposed operands.
  if (options.fuse_conv_weight_grad) p.Add(std::make_unique<FuseConvWeightGrad>(options.keep));
  // Max pooling's gradient from x, without the forward's int64 indices.
  if (options.fuse_max_pool_grad) p.Add(std::make_unique<FuseMaxPoolGrad>(options.keep));
  if (options.fuse_elementwise) {
    // Cheap forward values the backward reads are recomputed there, inside
    // its fused kernels, instead of being kept alive in between.
    p.Add(std::make_unique<Rematerialize>());
    p.Add(std::make_unique<FuseElementwise>(options.keep));
    // The parameters' half copies that no chain took: one multi-tensor Cast.
    p.Add(std::make_unique<BatchCasts>());
  }
  // Last: what reads only weights and constants runs where it is first needed.
  p.Add(std::make_unique<SinkNodes>());
  return p;
}

}  // namespace amp::pipelines
