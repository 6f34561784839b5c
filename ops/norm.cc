// Normalizations and the softmax family.
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

Status InferBatchNorm(Ctx& c) {
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  // Opset 15 lets scale/bias and mean/var have their own types (T1, T2).
  AMP_RETURN_IF_ERROR(SameDType(c, {1, 2}));
  AMP_RETURN_IF_ERROR(SameDType(c, {3, 4}));
  // Opset 14+: the running statistics are outputs only in training mode.
  if (c.opset() >= 14 && c.node().GetInt("training_mode", 0) == 0 && c.num_outputs() > 1)
    return c.Error("has ", c.num_outputs(),
                   " outputs, but with training_mode 0 BatchNormalization has only Y");
  // scale, B, mean and var are one value per channel (dim 1 of X).
  const auto& x = c.input_shape(0);
  if (x && x->size() < 2)
    return c.Error("X must have rank >= 2, but has shape ", ShapeToString(*x));
  for (size_t i = 1; i < 5 && i < c.num_inputs(); ++i) {
    AMP_RETURN_IF_ERROR(RequireRank(c, i, 1, "a per-channel input"));
    if (x && c.has_input(i) && c.input_shape(i) && (*x)[1].is_static() &&
        (*c.input_shape(i))[0].is_static() && (*c.input_shape(i))[0].value() != (*x)[1].value())
      return c.Error("input ", i, " has ", (*c.input_shape(i))[0].value(), " values but X has ",
                     (*x)[1].value(), " channels");
  }
  c.SetOutput(0, c.input_dtype(0), c.input_shape(0));
  for (size_t i = 1; i < c.num_outputs(); ++i) c.SetOutput(i, c.input_dtype(3), c.input_shape(3));
  return Status::Ok();
}

Status InferLayerNorm(Ctx& c) {
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  // ai.amp LayerNormalization (fold-output-casts) writes Y as y_type, rounded
  // once from the FP32 result: the ONNX op followed by a Cast.
  DType y = c.input_dtype(0);
  if (c.node().domain() == "ai.amp") {
    if (!c.node().HasAttr("y_type")) return c.Error("needs y_type");
    y = static_cast<DType>(c.node().GetInt("y_type", 0));
    if (!IsFloat(y)) return c.Error("y_type must be a float type");
  }
  c.SetOutput(0, y, c.input_shape(0));
  DType stash = static_cast<DType>(c.node().GetInt("stash_type", 1));
  if (c.num_outputs() > 1) {
    std::optional<Shape> stat;
    if (const auto& x = c.input_shape(0)) {
      AMP_ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(c, c.node().GetInt("axis", -1),
                                                       static_cast<int64_t>(x->size())));
      stat = *x;
      for (size_t k = axis; k < x->size(); ++k) (*stat)[k] = Dim(1);
    }
    for (size_t i = 1; i < c.num_outputs(); ++i) c.SetOutput(i, stash, stat);
  }
  return Status::Ok();
}

Status InferSoftmax(Ctx& c) {
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  if (const auto& x = c.input_shape(0); x && !x->empty())
    AMP_RETURN_IF_ERROR(NormalizeAxis(c, c.node().GetInt("axis", -1), x->size()).status());
  return InferUnary(c);
}

// ---- gradients ----

// Normalization over `axes` with recomputed statistics:
// dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
// (`x` may be a value the rule just made, whose type inference has not set:
// its element type is the forward input's.)
Value* NormalizeBackward(G& b, Value* x, Value* dxhat, const std::vector<int64_t>& axes, double eps,
                         Value** xhat_out) {
  const DType t = b.x(0)->dtype();
  // The statistics are FP32 reductions, as the forward normalization's
  // (an op the precision passes keep FP32): pinned, so that bfloat16's half
  // ReduceMeans do not take them (the arithmetic on them follows: an FP32
  // input keeps an infer op FP32).
  auto pin = [](Value* v) {
    v->producer()->set_precision(DType::kFloat32,
                                 "a normalization's backward: its statistics in FP32");
    return v;
  };
  Value* mean = pin(b.Reduce("ReduceMean", x, axes, true));
  Value* xc = b.Op("Sub", {x, mean});
  Value* var = pin(b.Reduce("ReduceMean", b.Op("Mul", {xc, xc}), axes, true));
  Value* invstd = b.Op("Reciprocal", {b.Op("Sqrt", {b.Op("Add", {var, b.Scalar(eps, t)})})});
  Value* xhat = b.Op("Mul", {xc, invstd});
  *xhat_out = xhat;
  Value* m1 = pin(b.Reduce("ReduceMean", dxhat, axes, true));
  Value* m2 = pin(b.Reduce("ReduceMean", b.Op("Mul", {dxhat, xhat}), axes, true));
  return b.Op("Mul", {invstd, b.Op("Sub", {b.Op("Sub", {dxhat, m1}), b.Op("Mul", {xhat, m2})})});
}

Status GradSoftmax(G& b) {  // Softmax and LogSoftmax (opset 13: one axis)
  int64_t axis = b.node().GetInt("axis", -1);
  Value* dy = b.dy(0);
  Value* y = b.y(0);
  if (b.node().op_type() == "Softmax") {
    Value* s = b.Reduce("ReduceSum", b.Op("Mul", {dy, y}), {axis}, true);
    b.dx = {b.Op("Mul", {y, b.Op("Sub", {dy, s})})};
  } else {
    Value* s = b.Reduce("ReduceSum", dy, {axis}, true);
    b.dx = {b.Op("Sub", {dy, b.Op("Mul", {b.Op("Exp", {y}), s})})};
  }
  return Status::Ok();
}

Status GradBatchNorm(G& b) {
  const Node& n = b.node();
  if (n.GetInt("training_mode", 0) == 0)
    return Unimplemented(
        n.Describe(),
        ": the gradient of BatchNormalization in inference mode is not supported; compile "
        "with --train-mode (batch statistics, as PyTorch's train(); the dynamo exporter writes "
        "BatchNorm in inference form), or export in training mode");
  size_t rank = ShapeOrDie(b.x(0)).size();
  if (rank < 2) return InvalidArgument(n.Describe(), ": input rank must be >= 2");
  std::vector<int64_t> axes = {0};
  for (size_t k = 2; k < rank; ++k) axes.push_back(static_cast<int64_t>(k));
  std::vector<int64_t> bshape(rank, 1);
  bshape[1] = -1;
  Value* gamma = b.Op("Reshape", {b.x(1), b.Ints(bshape)});
  Value* dy = b.dy(0);
  Value* xhat = nullptr;
  Value* dx = NormalizeBackward(b, b.x(0), b.Op("Mul", {dy, gamma}), axes,
                                n.GetFloat("epsilon", 1e-5f), &xhat);
  b.dx.assign(5, nullptr);
  if (b.wants(0)) b.dx[0] = dx;
  if (b.wants(1)) b.dx[1] = b.Reduce("ReduceSum", b.Op("Mul", {dy, xhat}), axes, false);
  if (b.wants(2)) b.dx[2] = b.Reduce("ReduceSum", dy, axes, false);
  return Status::Ok();
}

// InstanceNormalization: each (sample, channel) normalized over the
// spatial axes; scale and bias per channel.
Status GradInstanceNorm(G& b) {
  const Node& n = b.node();
  size_t rank = ShapeOrDie(b.x(0)).size();
  if (rank < 3) return InvalidArgument(n.Describe(), ": input rank must be >= 3");
  std::vector<int64_t> spatial, all_but_channel = {0};
  for (size_t k = 2; k < rank; ++k) {
    spatial.push_back(static_cast<int64_t>(k));
    all_but_channel.push_back(static_cast<int64_t>(k));
  }
  std::vector<int64_t> bshape(rank, 1);
  bshape[1] = -1;
  Value* dy = b.dy(0);
  Value* gamma = b.Op("Reshape", {b.x(1), b.Ints(bshape)});
  Value* xhat = nullptr;
  Value* dx = NormalizeBackward(b, b.x(0), b.Op("Mul", {dy, gamma}), spatial,
                                n.GetFloat("epsilon", 1e-5f), &xhat);
  b.dx.assign(3, nullptr);
  if (b.wants(0)) b.dx[0] = dx;
  if (b.wants(1)) b.dx[1] = b.Reduce("ReduceSum", b.Op("Mul", {dy, xhat}), all_but_channel, false);
  if (b.wants(2)) b.dx[2] = b.Reduce("ReduceSum", dy, all_but_channel, false);
  return Status::Ok();
}

// GroupNormalization: x [N, C, ...] normalized over each group of C /
// num_groups channels and the spatial axes, computed on x reshaped to
// [N, G, C/G * spatial]. Scale and bias are per channel ([C], opset 21) or
// per group ([G], opset 18).
Status GradGroupNorm(G& b) {
  const Node& n = b.node();
  auto dims = StaticDims(ShapeOrDie(b.x(0)));
  int64_t groups = n.GetInt("num_groups", 0);
  if (!dims || dims->size() < 2 || groups <= 0 || (*dims)[1] % groups != 0)
    return Unimplemented(n.Describe(),
                         ": GroupNormalization's gradient needs a static input "
                         "shape whose channels num_groups divides");
  if (n.GetInt("stash_type", 1) != 1)
    return Unimplemented(n.Describe(), ": GroupNormalization's gradient supports stash_type 1");
  const int64_t rank = static_cast<int64_t>(dims->size()), c = (*dims)[1];
  const bool per_channel = b.opset() >= 21;
  std::vector<int64_t> bshape(static_cast<size_t>(rank), 1), grouped = {(*dims)[0], groups, -1};
  bshape[1] = c;
  Value* dy = b.dy(0);
  // The scale per channel, in x's shape; from [G] each group's value repeated.
  Value* gamma = b.x(1);
  if (!per_channel)
    gamma = b.Op("Reshape", {b.Op("Expand", {b.Op("Reshape", {gamma, b.Ints({groups, 1})}),
                                             b.Ints({groups, c / groups})}),
                             b.Ints({c})});
  gamma = b.Op("Reshape", {gamma, b.Ints(bshape)});
  Value* xg = b.Op("Reshape", {b.x(0), b.Ints(grouped)});
  Value* dxhat = b.Op("Reshape", {b.Op("Mul", {dy, gamma}), b.Ints(grouped)});
  Value* xhat_g = nullptr;
  Value* dx_g = NormalizeBackward(b, xg, dxhat, {2}, n.GetFloat("epsilon", 1e-5f), &xhat_g);
  b.dx.assign(3, nullptr);
  Value* shape = b.ShapeOf(b.x(0));
  if (b.wants(0)) b.dx[0] = b.Op("Reshape", {dx_g, shape});
  std::vector<int64_t> all_but_channel = {0};
  for (int64_t k = 2; k < rank; ++k) all_but_channel.push_back(k);
  auto per_param = [&](Value* v) -> Value* {  // v in x's shape: summed to the scale's shape
    Value* per_c = b.Reduce("ReduceSum", v, all_but_channel, false);  // [C]
    if (per_channel) return per_c;
    return b.Reduce("ReduceSum", b.Op("Reshape", {per_c, b.Ints({groups, c / groups})}), {1},
                    false);
  };
  if (b.wants(1)) b.dx[1] = per_param(b.Op("Mul", {dy, b.Op("Reshape", {xhat_g, shape})}));
  if (b.wants(2)) b.dx[2] = per_param(dy);
  return Status::Ok();
}

Status GradLayerNorm(G& b) {
  const Node& n = b.node();
  size_t rank = ShapeOrDie(b.x(0)).size();
  int64_t axis = n.GetInt("axis", -1);
  if (axis < -static_cast<int64_t>(rank) || axis >= static_cast<int64_t>(rank))
    return InvalidArgument(n.Describe(), ": axis ", axis, " is out of range for rank ", rank);
  if (axis < 0) axis += static_cast<int64_t>(rank);
  std::vector<int64_t> norm_axes, outer_axes;
  for (size_t k = 0; k < rank; ++k)
    (static_cast<int64_t>(k) >= axis ? norm_axes : outer_axes).push_back(static_cast<int64_t>(k));
  Value* dy = b.dy(0);
  Value* xhat = nullptr;
  Value* dx = NormalizeBackward(b, b.x(0), b.Op("Mul", {dy, b.x(1)}), norm_axes,
                                n.GetFloat("epsilon", 1e-5f), &xhat);
  b.dx.assign(n.num_inputs(), nullptr);
  if (b.wants(0)) b.dx[0] = dx;
  auto outer_sum = [&](Value* v) {
    return outer_axes.empty() ? v : b.Reduce("ReduceSum", v, outer_axes, false);
  };
  if (b.wants(1)) b.dx[1] = outer_sum(b.Op("Mul", {dy, xhat}));
  if (n.num_inputs() > 2 && b.wants(2)) b.dx[2] = outer_sum(dy);
  return Status::Ok();
}

// ai.amp NormalizeGrad (fuse-norm-grad): x and dxhat in, dx (and xhat) out,
// all of x's type and shape.
Status InferNormalizeGrad(InferenceContext& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1}));
  for (size_t k = 0; k < c.num_outputs(); ++k) c.SetOutput(k, c.input_dtype(0), c.input_shape(0));
  return Status::Ok();
}

// Training BatchNormalization's running mean and variance may be written
// over the old ones (each kernel reads a channel's old statistic before it
// writes the new one): no copy of them after the step.
std::vector<std::pair<int, int>> InplaceBatchNorm(const Node& n) {
  if (n.GetInt("training_mode", 0) == 0) return {};
  std::vector<std::pair<int, int>> pairs;
  for (int k = 1; k < 3; ++k)
    if (static_cast<int>(n.num_outputs()) > k && n.output(k) && n.input(k + 2))
      pairs.emplace_back(k, k + 2);
  return pairs;
}

// ai.amp LayerNormGrad (fuse-norm-grad): x, dy, scale [, addend] in; dx
// (+ addend) of x's type and shape; the scale's and the bias's gradients and
// dx's sum over the rows (fuse-norm-grad: a bias gradient behind the
// normalization) of the scale's; and dx rounded to copy_type
// (fold-output-casts: the half copy the GEMMs read).
Status InferLayerNormGrad(InferenceContext& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1, 2}));
  c.SetOutput(0, c.input_dtype(0), c.input_shape(0));
  for (size_t k = 1; k < c.num_outputs() && k < 4; ++k)
    c.SetOutput(k, c.input_dtype(2), c.input_shape(2));
  if (c.num_outputs() > 4) {
    if (!c.node().HasAttr("copy_type"))
      return c.Error("a fifth output (dx's copy) needs copy_type");
    DType t = static_cast<DType>(c.node().GetInt("copy_type", 0));
    if (!IsFloat(t)) return c.Error("copy_type must be a float type");
    c.SetOutput(4, t, c.input_shape(0));
  }
  return Status::Ok();
}

// ai.amp BatchNormGrad (fuse-norm-grad): training BatchNormalization's
// whole backward over all axes but the channel (1): x and dy of any float
// type, scale (C FP32 values, any shape) in; dx (of type dx_type, x's type
// by default), and the scale's and bias's gradients ([C] FP32).
Status InferBatchNormGrad(InferenceContext& c) {
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  AMP_RETURN_IF_ERROR(RequireFloat(c, 1));
  const auto& x = c.input_shape(0);
  if (x && x->size() < 2) return c.Error("x must have a channel axis");
  DType dx = c.input_dtype(0);
  if (c.node().HasAttr("dx_type")) {
    dx = static_cast<DType>(c.node().GetInt("dx_type", 0));
    if (!IsFloat(dx)) return c.Error("dx_type must be a float type");
  }
  c.SetOutput(0, dx, x);
  std::optional<Shape> ch;
  if (x) ch = Shape{(*x)[1]};
  for (size_t k = 1; k < c.num_outputs(); ++k) c.SetOutput(k, DType::kFloat32, ch);
  return Status::Ok();
}

}  // namespace

std::vector<OpDef> NormOps() {
  return {
      {.op_type = "Softmax",
       .arity = {1, 1, 1, 1},
       .infer = InferSoftmax,
       .precision = {OpClass::kFp32,
                     "exp overflows and the normalizing sum loses precision in half"},
       .grad = GradSoftmax},
      {.op_type = "LogSoftmax",
       .arity = {1, 1, 1, 1},
       .infer = InferSoftmax,
       .precision = {OpClass::kFp32,
                     "exp overflows and the normalizing sum loses precision in half"},
       .grad = GradSoftmax},
      {.op_type = "Hardmax",
       .arity = {1, 1, 1, 1},
       .infer = InferSoftmax,
       .precision = {OpClass::kFp32, "rounding to half could change which element is largest"},
       .no_grad = "piecewise constant: zero gradient almost everywhere; amp has no rule"},
      {.op_type = "BatchNormalization",
       .arity = {5, 5, 1, 3},
       .infer = InferBatchNorm,
       .precision = {OpClass::kInfer, "half X and Y between half ops; FP32 statistics"},
       .fp32_inputs = {1, 2, 3, 4},
       .grad = GradBatchNorm,
       .nondiff_inputs = {3, 4},
       .inplace = InplaceBatchNorm},
      {.op_type = "LayerNormalization",
       .arity = {2, 3, 1, 3},
       .infer = InferLayerNorm,
       .precision = {OpClass::kFp32, "mean and variance need FP32"},
       .grad = GradLayerNorm},
      {.domain = "ai.amp",
       .op_type = "LayerNormalization",
       .arity = {2, 3, 1, 3},
       .infer = InferLayerNorm,
       .precision = {OpClass::kNone, "made by fold-output-casts at specialization"},
       .no_grad = "made by fold-output-casts at specialization: never differentiated"},
      {.domain = "ai.amp",
       .op_type = "NormalizeGrad",
       .arity = {2, 2, 1, 2},
       .infer = InferNormalizeGrad,
       .precision = {OpClass::kNone, "made by fuse-norm-grad at specialization, after precision"},
       .no_grad = "made by fuse-norm-grad at specialization: never differentiated"},
      {.domain = "ai.amp",
       .op_type = "LayerNormGrad",
       .arity = {3, 4, 2, 5},
       .infer = InferLayerNormGrad,
       .precision = {OpClass::kNone, "made by fuse-norm-grad at specialization, after precision"},
       .no_grad = "made by fuse-norm-grad at specialization: never differentiated",
       .launches = 2},
      {.domain = "ai.amp",
       .op_type = "BatchNormGrad",
       .arity = {3, 3, 2, 3},
       .infer = InferBatchNormGrad,
       .precision = {OpClass::kNone, "made by fuse-norm-grad at specialization, after precision"},
       .no_grad = "made by fuse-norm-grad at specialization: never differentiated"},
      {.op_type = "GroupNormalization",
       .arity = {3, 3, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kFp32, "mean and variance need FP32"},
       .grad = GradGroupNorm},
      {.op_type = "InstanceNormalization",
       .arity = {3, 3, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kFp32, "mean and variance need FP32"},
       .grad = GradInstanceNorm},
  };
}

}  // namespace amp
