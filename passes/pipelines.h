// Every pipeline amp runs, written once, as typed values: lists of pass
// objects, each made with its own options. amp-compile, amp-run, the
// compiler's Specialize (codegen/executable.h) and the tests build their
// pipelines here; only amp-opt builds one from a user's list of names
// (passes/registry.h). ForLevel, BindShapes and Specialize are in amp_passes;
// Training and Lower, in amp_training (training_pipelines.cc).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "passes/attach_loss.h"
#include "passes/data_parallel.h"
#include "passes/loss_scaling.h"
#include "passes/optimizer.h"
#include "passes/pass.h"
#include "passes/precision_policy.h"

namespace amp::pipelines {

// The precision passes of a level: fold-shapes, dce, paint-precision,
// insert-casts, fold-casts, dce (O1, O2, O3); nothing for O0.
PassPipeline ForLevel(const PrecisionPolicy& policy);

// bind-dims, fold-shapes, dce: symbolic dims fixed and the shape arithmetic
// they decide folded away.
PassPipeline BindShapes(const std::map<std::string, int64_t>& bindings);

struct TrainingOptions {
  LossOptions loss;
  std::string freeze;     // regex of parameters autodiff leaves alone
  std::string trainable;  // regex: only these are trained ("" = all)
  OptimizerOptions optimizer;
  // Loss scaling between the backward pass and the optimizer; none for an
  // FP32 step.
  std::optional<LossScaleOptions> loss_scale;
  // Gradients and loss all-reduced over the ranks (data-parallel), right
  // after the backward pass.
  std::optional<DataParallelOptions> data_parallel;
  bool gradients_only = false;  // stop after the backward pass
};
// attach-loss, autodiff, [loss-scaling], optimizer, dce (or attach-loss,
// autodiff, dce with gradients_only).
PassPipeline Training(const TrainingOptions& options);

struct SpecializeOptions {
  std::map<std::string, int64_t> bindings;  // every symbolic dim of the inputs
  bool fuse_optimizer = false;              // fuse-unscale and fuse-optimizer too
  bool fuse_loss_scale = false;             // fuse-loss-scale after those
  bool fuse_attention = false;              // fuse-attention after fold-into-gemm
  bool link_attention_stats = false;        // link-attention-stats after those
  bool fuse_norm_grad = false;              // fuse-norm-grad after fold-into-gemm
  bool fold_output_casts = false;           // fold-output-casts after that
  bool fuse_gemm_epilogue = false;          // fuse-gemm-epilogue after those
  bool fuse_cross_entropy = false;          // fuse-cross-entropy after that
  bool fuse_conv_weight_grad = false;       // fuse-conv-weight-grad after that
  bool fuse_max_pool_grad = false;          // fuse-max-pool-grad after that
  bool fuse_elementwise = false;            // fuse-elementwise and batch-casts last
  std::set<std::string, std::less<>> keep;  // values read after the step (never fused away)
  bool guard_nonfinite = false;             // guard-nonfinite first
};
// What specialization runs before planning: [guard-nonfinite,] [fuse-unscale, fuse-optimizer,]
// [fuse-loss-scale,] transpose-folding, bind-dims, fold-shapes, dce, elide-dropout,
// fold-into-gemm, [fuse-attention, fold-casts, fold-attention-views,
// [link-attention-stats,]]
// [fuse-norm-grad,] [fold-output-casts,] [fuse-gemm-epilogue,]
// [fuse-cross-entropy,] [fuse-conv-weight-grad,] [fuse-max-pool-grad,]
// [rematerialize, fuse-elementwise, batch-casts], sink-nodes.
PassPipeline Specialize(const SpecializeOptions& options);

// What makes any ONNX model one the runtime runs: expand-gradient (ONNX's
// Gradient nodes, from other producers, become backward graphs). amp-compile
// runs it on every model; amp-run runs it on the models it is given.
PassPipeline Lower();

}  // namespace amp::pipelines
