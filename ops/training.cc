// Training ops: ONNX's ai.onnx.preview.training (Gradient, Adam, Momentum, Adagrad) and amp's own
// ai.amp fused ops (FusedAdam, FusedSgd, UnscaleCheck, LossScaleUpdate) and its collective
// (AllReduce).
//
// Each op's facts in one record (ops/op_def.h): arity, type and shape
// inference, precision class, shape-like inputs, gradient rule or why there
// is none. Kernels are the backends' (kernels/cpu, kernels/cuda).
#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <set>

#include "compiler/const_eval.h"
#include "ops/families.h"
#include "ops/grad_builder.h"
#include "ops/infer_util.h"

namespace amp {
namespace {

using Ctx = InferenceContext;
using G = GradBuilder;

// ---- type and shape inference ----

// ai.onnx.preview.training optimizers: R, T, then groups of n tensors (X, G,
// and V for Momentum, H for Adagrad, V and H for Adam); outputs are the new
// X, then the new state, each typed like its input.
Status InferPreviewOptimizer(InferenceContext& ctx) {
  int groups_in = ctx.node().op_type() == "Adam" ? 4 : 3;
  int groups_out = groups_in - 1;
  int64_t rest = static_cast<int64_t>(ctx.num_inputs()) - 2;
  if (rest <= 0 || rest % groups_in != 0)
    return ctx.Error("expects R, T and ", groups_in, " groups of tensors");
  int64_t n = rest / groups_in;
  if (static_cast<int64_t>(ctx.num_outputs()) != groups_out * n)
    return ctx.Error("expects ", groups_out * n, " outputs for ", n, " tensors");
  for (int64_t j = 0; j < groups_out * n; ++j) {
    size_t from = static_cast<size_t>(j < n ? 2 + j : 2 + n + j);
    if (!ctx.has_input(from)) return ctx.Error("input ", from, " is missing");
    ctx.SetOutput(j, ctx.input_dtype(from), ctx.input_shape(from));
  }
  return Status::Ok();
}

// Gradient: output i is the gradient of `y` with respect to the value named
// xs[i], so it has that value's type. (The expand-gradient pass replaces the
// node by the backward graph before anything runs.)
Status InferGradient(InferenceContext& ctx) {
  std::vector<std::string> xs;
  if (const Attribute* a = ctx.node().FindAttr("xs")) xs = a->strings;
  if (xs.size() != ctx.num_outputs())
    return ctx.Error("has ", ctx.num_outputs(), " outputs for ", xs.size(), " names in xs");
  if (!ctx.node().FindAttr("y"))
    return ctx.Error("attribute y (the value to differentiate) is required");
  for (size_t i = 0; i < xs.size(); ++i) {
    const Value* x = ctx.node().graph()->FindValue(xs[i]);
    if (!x) return ctx.Error("xs names '", xs[i], "', which the graph does not define");
    ctx.SetOutput(i, x->dtype(), x->type().shape);
  }
  return Status::Ok();
}

// ai.amp FusedAdam (fuse-optimizer): lr, step, skip (optional), then n
// parameters, n gradients, n first and n second moments; outputs the new
// parameters and moments, each typed like its input.
Status InferFusedAdam(InferenceContext& ctx) {
  int64_t rest = static_cast<int64_t>(ctx.num_inputs()) - 3;
  if (rest <= 0 || rest % 4 != 0)
    return ctx.Error("expects lr, step, skip and 4 groups of tensors");
  int64_t n = rest / 4;
  if (static_cast<int64_t>(ctx.num_outputs()) != 3 * n)
    return ctx.Error("expects ", 3 * n, " outputs for ", n, " parameters");
  for (int64_t j = 0; j < 3 * n; ++j) {
    size_t from = static_cast<size_t>(j < n ? 3 + j : 3 + n + j);
    ctx.SetOutput(j, ctx.input_dtype(from), ctx.input_shape(from));
  }
  return Status::Ok();
}

// ai.amp FusedSgd (fuse-optimizer): lr, step, skip, then n parameters, n
// gradients and, with momentum, n momentum buffers; outputs the n new
// parameters and (with momentum) the n new buffers. Attributes momentum,
// dampening, nesterov, weight_decay (PyTorch's SGD).
Status InferFusedSgd(InferenceContext& ctx) {
  bool momentum = ctx.node().GetFloat("momentum", 0.0f) != 0.0f;
  int64_t groups = momentum ? 3 : 2;
  int64_t rest = static_cast<int64_t>(ctx.num_inputs()) - 3;
  if (rest <= 0 || rest % groups != 0)
    return ctx.Error("expects lr, step, skip and ", groups, " groups of tensors");
  int64_t n = rest / groups;
  if (static_cast<int64_t>(ctx.num_outputs()) != (groups - 1) * n)
    return ctx.Error("expects ", (groups - 1) * n, " outputs for ", n, " parameters");
  for (int64_t j = 0; j < (groups - 1) * n; ++j) {
    size_t from = static_cast<size_t>(j < n ? 3 + j : 3 + n + j);
    ctx.SetOutput(j, ctx.input_dtype(from), ctx.input_shape(from));
  }
  return Status::Ok();
}

// ai.amp UnscaleCheck (fuse-unscale): 1/S (or, with invert_scale = 1, S
// itself, the FP32 reciprocal taken inside), then n gradients; outputs the n
// unscaled gradients and a bool scalar (any of them not finite).
Status InferUnscaleCheck(InferenceContext& ctx) {
  if (ctx.num_outputs() != ctx.num_inputs())
    return ctx.Error("expects one output per gradient and the flag");
  for (size_t j = 1; j < ctx.num_inputs(); ++j)
    ctx.SetOutput(j - 1, ctx.input_dtype(j), ctx.input_shape(j));
  ctx.SetOutput(ctx.num_outputs() - 1, DType::kBool, Shape{});
  return Status::Ok();
}

// ai.amp AnyNonFinite (guard-nonfinite): float tensors of any type and
// shape; a bool scalar, true when an element of one is NaN or infinite.
Status InferAnyNonFinite(InferenceContext& ctx) {
  for (size_t j = 0; j < ctx.num_inputs(); ++j)
    if (!ctx.has_input(j) || !IsFloat(ctx.input_dtype(j)))
      return ctx.Error("input ", j, " must be a float tensor");
  ctx.SetOutput(0, DType::kBool, Shape{});
  return Status::Ok();
}

// ai.amp LossScaleUpdate (fuse-loss-scale): GradScaler's update of the
// scale S (float scalar) and growth tracker T (int64 scalar) from the
// found-inf flag F (bool scalar), attributes growth_factor, backoff_factor,
// growth_interval, min_scale and max_scale (0: no clamp):
//   F:       S' = S * backoff              T' = 0
//   else:    c = T + 1; grow = c == interval
//            S' = grow && isfinite(S * growth) ? S * growth : S
//            T' = grow ? 0 : c
// then S' clamped to [min_scale, max_scale] where those are set. With a
// fourth input, the optimizer's step count N (float scalar), a third output
// N' = F ? N : N + 1 (the optimizer's step update, which a skipped step
// keeps): the step's scalar updates in one launch.
Status InferLossScaleUpdate(InferenceContext& ctx) {
  const DType want[4] = {DType::kFloat32, DType::kInt64, DType::kBool, DType::kFloat32};
  if (ctx.num_outputs() != ctx.num_inputs() - 1)
    return ctx.Error("expects ", ctx.num_inputs() - 1, " outputs for ", ctx.num_inputs(),
                     " inputs");
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const auto& shape = ctx.input_shape(i);
    if (ctx.input_dtype(i) != want[i] || (shape && !shape->empty()))
      return ctx.Error("input ", i, " must be a scalar of type ", DTypeName(want[i]), ", not ",
                       DTypeName(ctx.input_dtype(i)), shape ? ShapeToString(*shape) : "");
  }
  if (ctx.node().GetInt("growth_interval", 0) < 1)
    return ctx.Error("growth_interval must be at least 1");
  ctx.SetOutput(0, DType::kFloat32, Shape{});
  ctx.SetOutput(1, DType::kInt64, Shape{});
  if (ctx.num_outputs() == 3) ctx.SetOutput(2, DType::kFloat32, Shape{});
  return Status::Ok();
}

// ai.amp AllReduce (data-parallel): n FP32 tensors in, their means over the
// ranks out, typed like the inputs.
Status InferAllReduce(InferenceContext& ctx) {
  if (ctx.num_outputs() != ctx.num_inputs()) return ctx.Error("expects one output per input");
  for (size_t j = 0; j < ctx.num_inputs(); ++j) {
    if (ctx.input_dtype(j) != DType::kFloat32)
      return ctx.Error("reduces float tensors, but input ", j, " is ",
                       DTypeName(ctx.input_dtype(j)));
    ctx.SetOutput(j, ctx.input_dtype(j), ctx.input_shape(j));
  }
  return Status::Ok();
}

// ---- gradients ----

// (none: see each record's no_grad)

// FusedAdam reads p, m and v at an index before it writes them there: new
// parameter k over p_k, new moments over m_k and v_k.
std::vector<std::pair<int, int>> InplaceFusedAdam(const Node& n) {
  int count = static_cast<int>(n.num_inputs() - 3) / 4;
  std::vector<std::pair<int, int>> pairs;
  for (int k = 0; k < count; ++k) {
    pairs.emplace_back(k, 3 + k);
    pairs.emplace_back(count + k, 3 + 2 * count + k);
    pairs.emplace_back(2 * count + k, 3 + 3 * count + k);
  }
  return pairs;
}

// FusedSgd reads p and the buffer at an index before it writes them there.
std::vector<std::pair<int, int>> InplaceFusedSgd(const Node& n) {
  bool momentum = n.GetFloat("momentum", 0.0f) != 0.0f;
  int count = static_cast<int>(n.num_inputs() - 3) / (momentum ? 3 : 2);
  std::vector<std::pair<int, int>> pairs;
  for (int k = 0; k < count; ++k) {
    pairs.emplace_back(k, 3 + k);
    if (momentum) pairs.emplace_back(count + k, 3 + 2 * count + k);
  }
  return pairs;
}

// AllReduce reads each input before writing its output.
std::vector<std::pair<int, int>> InplaceAllReduce(const Node& n) {
  std::vector<std::pair<int, int>> pairs;
  for (int k = 0; k < static_cast<int>(n.num_inputs()); ++k) pairs.emplace_back(k, k);
  return pairs;
}

// LossScaleUpdate reads S, T (and N) before it writes S', T' (and N').
std::vector<std::pair<int, int>> InplaceLossScaleUpdate(const Node& n) {
  if (n.num_inputs() == 4) return {{0, 0}, {1, 1}, {2, 3}};
  return {{0, 0}, {1, 1}};
}

// UnscaleCheck reads each gradient element before writing its unscaled value.
std::vector<std::pair<int, int>> InplaceUnscaleCheck(const Node& n) {
  std::vector<std::pair<int, int>> pairs;
  for (int k = 0; k + 1 < static_cast<int>(n.num_inputs()); ++k) pairs.emplace_back(k, 1 + k);
  return pairs;
}

}  // namespace

std::vector<OpDef> TrainingOps() {
  return {
      {.domain = "ai.onnx.preview.training",
       .op_type = "Gradient",
       .arity = {1, -1, 1, -1},
       .infer = InferGradient,
       .precision = {OpClass::kNone, "expanded by the compiler before precision is decided"},
       .no_grad = "a training op: it computes gradients or updates, and is not differentiated"},
      {.domain = "ai.onnx.preview.training",
       .op_type = "Adam",
       .arity = {6, -1, 3, -1},
       .infer = InferPreviewOptimizer,
       .precision = {OpClass::kNone, "a training op of another producer"},
       .no_grad = "a training op: it computes gradients or updates, and is not differentiated"},
      {.domain = "ai.onnx.preview.training",
       .op_type = "Momentum",
       .arity = {5, -1, 2, -1},
       .infer = InferPreviewOptimizer,
       .precision = {OpClass::kNone, "a training op of another producer"},
       .no_grad = "a training op: it computes gradients or updates, and is not differentiated"},
      {.domain = "ai.onnx.preview.training",
       .op_type = "Adagrad",
       .arity = {5, -1, 2, -1},
       .infer = InferPreviewOptimizer,
       .precision = {OpClass::kNone, "a training op of another producer"},
       .no_grad = "a training op: it computes gradients or updates, and is not differentiated"},
      {.domain = "ai.amp",
       .op_type = "FusedAdam",
       .arity = {7, -1, 3, -1},
       .infer = InferFusedAdam,
       .precision = {OpClass::kNone, "FP32 by construction (fuse-optimizer)"},
       .no_grad = "made by fusion after autodiff: never differentiated",
       .inplace = InplaceFusedAdam},
      {.domain = "ai.amp",
       .op_type = "FusedSgd",
       .arity = {5, -1, 1, -1},
       .infer = InferFusedSgd,
       .precision = {OpClass::kNone, "FP32 by construction (fuse-optimizer)"},
       .no_grad = "made by fusion after autodiff: never differentiated",
       .inplace = InplaceFusedSgd},
      {.domain = "ai.amp",
       .op_type = "UnscaleCheck",
       .arity = {2, -1, 2, -1},
       .infer = InferUnscaleCheck,
       .precision = {OpClass::kNone, "FP32 by construction (fuse-unscale)"},
       .no_grad = "made by fusion after autodiff: never differentiated",
       .inplace = InplaceUnscaleCheck},
      {.domain = "ai.amp",
       .op_type = "AnyNonFinite",
       .arity = {1, -1, 1, 1},
       .infer = InferAnyNonFinite,
       .precision = {OpClass::kNone, "reads its inputs as they are (guard-nonfinite)"},
       .no_grad = "made at specialization after autodiff: never differentiated"},
      {.domain = "ai.amp",
       .op_type = "LossScaleUpdate",
       .arity = {3, 4, 2, 3},
       .infer = InferLossScaleUpdate,
       .precision = {OpClass::kNone, "FP32 by construction (fuse-loss-scale)"},
       .no_grad = "made by fusion after autodiff: never differentiated",
       .inplace = InplaceLossScaleUpdate},
      {.domain = "ai.amp",
       .op_type = "AllReduce",
       .arity = {1, -1, 1, -1},
       .infer = InferAllReduce,
       .precision = {OpClass::kFp32, "gradients are reduced across ranks in FP32"},
       .no_grad = "made by data-parallel after autodiff: never differentiated",
       .inplace = InplaceAllReduce},
  };
}

}  // namespace amp
