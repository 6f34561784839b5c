// Losses: SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss.
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

// ai.amp SoftmaxCrossEntropyGrad (fuse-cross-entropy): the gradient autodiff
// writes for SoftmaxCrossEntropyLoss over 2-D logits,
//   dx = (Softmax<axis = 1>(x) - OneHot<axis = 1>(labels, C, [0, 1])) * scale
// x [N, C] FP32, labels [N] integers (outside [-C, C): no class, as OneHot),
// scale FP32 broadcasting to [N, 1] (a scalar, or per-row weights); dx
// FP32, and with half_type a second output, dx rounded to that type.
// What the fused cross-entropy ops share: labels [N] of an integer type,
// 2-D logits, a float32 scale broadcasting to [N, 1].
Status CheckLabelsLogitsScale(Ctx& c) {
  const auto& x = c.input_shape(0);
  const auto& labels = c.input_shape(1);
  const auto& scale = c.input_shape(2);
  if (!IsInteger(c.input_dtype(1))) return c.Error("labels must be int32 or int64");
  if (x && x->size() != 2) return c.Error("logits must be 2-D [N, C], not ", ShapeToString(*x));
  if (labels && labels->size() != 1) return c.Error("labels must be 1-D [N]");
  if (scale && (scale->size() > 2 ||
                (scale->size() == 2 && (*scale)[1].is_static() && (*scale)[1].value() != 1)))
    return c.Error("scale must broadcast to [N, 1], not ", ShapeToString(*scale));
  return Status::Ok();
}

// Output `i`, when present: the gradient's copy in half_type.
Status SetHalfCopy(Ctx& c, size_t i) {
  if (c.num_outputs() <= i) return Status::Ok();
  auto half = static_cast<DType>(c.node().GetInt("half_type", 0));
  if (half != DType::kFloat16 && half != DType::kBFloat16)
    return c.Error("output ", i, " (the half copy) needs half_type float16 (10) or bfloat16 (16)");
  c.SetOutput(i, half, c.input_shape(0));
  return Status::Ok();
}

Status InferSoftmaxCrossEntropyGrad(Ctx& c) {
  if (c.input_dtype(0) != DType::kFloat32 || c.input_dtype(2) != DType::kFloat32)
    return c.Error("logits and scale must be float32");
  AMP_RETURN_IF_ERROR(CheckLabelsLogitsScale(c));
  c.SetOutput(0, DType::kFloat32, c.input_shape(0));
  return SetHalfCopy(c, 1);
}

// ai.amp SoftmaxCrossEntropy (fuse-cross-entropy): SoftmaxCrossEntropyLoss
// and its gradient in one pass over 2-D logits x [N, C] (float32, or a half
// type read exactly as FP32: the Cast before the loss folded in), labels
// [N], scale FP32 broadcasting to [N, 1]:
//   loss = SoftmaxCrossEntropyLoss <reduction, ignore_index> (float(x), labels)
//   dx = (Softmax<axis = 1>(float(x)) - OneHot(labels, C, [0, 1])) * (scale / scale_divisor)
// (scale_divisor 1 when absent), as SoftmaxCrossEntropyGrad; with half_type
// a third output, dx rounded to that type. No class weights.
Status InferSoftmaxCrossEntropyFused(Ctx& c) {
  DType xt = c.input_dtype(0);
  if (xt != DType::kFloat32 && xt != DType::kFloat16 && xt != DType::kBFloat16)
    return c.Error("logits must be float32, float16 or bfloat16");
  if (c.input_dtype(2) != DType::kFloat32) return c.Error("scale must be float32");
  AMP_RETURN_IF_ERROR(CheckLabelsLogitsScale(c));
  std::string reduction = c.node().GetString("reduction", "mean");
  if (reduction != "mean" && reduction != "sum")
    return c.Error("reduction must be mean or sum, not '", reduction, "'");
  if (c.node().GetFloat("scale_divisor", 1.0f) == 0.0f) return c.Error("scale_divisor is 0");
  c.SetOutput(0, DType::kFloat32, Shape{});
  c.SetOutput(1, DType::kFloat32, c.input_shape(0));
  return SetHalfCopy(c, 2);
}

Status InferSoftmaxCrossEntropy(Ctx& c) {  // also NegativeLogLikelihoodLoss
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  if (!IsInteger(c.input_dtype(1))) return c.Error("labels must be int32 or int64");
  std::string reduction = c.node().GetString("reduction", "mean");
  std::optional<Shape> out;
  if (reduction == "none") {
    if (c.input_shape(1)) out = *c.input_shape(1);
  } else if (reduction == "mean" || reduction == "sum") {
    out = Shape{};
  } else {
    return c.Error("unknown reduction '", reduction, "'");
  }
  c.SetOutput(0, c.input_dtype(0), out);
  if (c.num_outputs() > 1) c.SetOutput(1, c.input_dtype(0), c.input_shape(0));  // log_prob
  return Status::Ok();
}

// ---- gradients ----

// What the class-index losses share: checks, a one-hot of the labels with
// `on` at the label (`off` elsewhere), and the scale of the upstream gradient
// for the reduction (1/N for mean; per-sample for none).
struct ClassLoss {
  Value* one_hot;
  Value* scale;
};

// With class weights and ignore_index (ONNX's and PyTorch's semantics): each
// sample n weighs w_n = weight[label_n] (1 without weights), 0 when its label
// is ignore_index; mean divides by the sum of the w_n, and a batch whose
// samples are all ignored has loss 0 and gradient 0 (not NaN).
StatusOr<ClassLoss> PrepareClassLoss(G& b, double on) {
  const Node& n = b.node();
  const Shape& xs = ShapeOrDie(b.x(0));
  if (xs.size() < 2 || !xs[1].is_static())
    return InvalidArgument(n.Describe(),
                           ": the number of classes (dim 1 of the input) must be static");
  const Shape& ls = ShapeOrDie(b.x(1));
  DType t = b.x(0)->dtype();
  Value* labels = b.x(1);
  Node* depth = b.Make("Constant", {});
  depth->SetAttr("value", Attribute::FromTensor(
                              Tensor::FromVector<int64_t>(DType::kInt64, {}, {xs[1].value()})));
  Tensor values(t, {2});
  values.SetDouble(0, 0.0);
  values.SetDouble(1, on);
  Node* vc = b.Make("Constant", {});
  vc->SetAttr("value", Attribute::FromTensor(values));
  // An out-of-range label (ignore_index -100) one-hots to all zeros.
  Node* oh = b.Make("OneHot", {labels, depth->output(0), vc->output(0)});
  oh->SetAttr("axis", Attribute::Int(1));
  // Per-sample weights, shaped like the labels (null: all 1).
  Value* valid = nullptr;
  if (n.HasAttr("ignore_index"))
    valid = b.Op("Not",
                 {b.Op("Equal", {labels, b.Scalar(static_cast<double>(n.GetInt("ignore_index", 0)),
                                                  labels->dtype())})});
  Value* w = nullptr;
  if (n.num_inputs() > 2 && n.input(2)) {
    Value* safe = valid ? b.Op("Where", {valid, labels, b.Scalar(0.0, labels->dtype())}) : labels;
    Node* g = b.Make("Gather", {n.input(2), safe});
    g->SetAttr("axis", Attribute::Int(0));
    w = g->output(0);
    if (valid) w = b.Op("Where", {valid, w, b.Scalar(0.0, t)});
  } else if (valid) {
    Node* c = b.Make("Cast", {valid});
    c->SetAttr("to", Attribute::Int(static_cast<int64_t>(t)));
    w = c->output(0);
  }
  std::string reduction = n.GetString("reduction", "mean");
  Value* scale = b.dy(0);
  if (reduction == "mean") {
    Value* denom;
    if (w) {
      std::vector<int64_t> all(ls.size());
      for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
      Value* total = b.Reduce("ReduceSum", w, all, false);
      Value* any = b.Op("Greater", {total, b.Scalar(0.0, t)});
      denom = b.Op("Where", {any, total, b.Scalar(1.0, t)});  // all ignored: 0 / 1
    } else {
      Node* count = b.Make("Cast", {b.Op("Size", {labels})});
      count->SetAttr("to", Attribute::Int(static_cast<int64_t>(t)));
      denom = count->output(0);
    }
    scale = b.Op("Div", {b.dy(0), denom});
  } else if (reduction == "none") {
    scale = b.Op("Unsqueeze", {b.dy(0), b.Ints({1})});
  }
  if (w) scale = b.Op("Mul", {scale, b.Op("Unsqueeze", {w, b.Ints({1})})});
  return ClassLoss{oh->output(0), scale};
}

Status GradSoftmaxCrossEntropy(G& b) {  // dX = (softmax(x) - onehot) * scale
  AMP_ASSIGN_OR_RETURN(ClassLoss c, PrepareClassLoss(b, 1.0));
  Node* sm = b.Make("Softmax", {b.x(0)});
  sm->SetAttr("axis", Attribute::Int(1));
  b.dx.assign(b.node().num_inputs(), nullptr);
  b.dx[0] = b.Op("Mul", {b.Op("Sub", {sm->output(0), c.one_hot}), c.scale});
  return Status::Ok();
}

Status GradNegativeLogLikelihood(G& b) {  // dX = -onehot * scale
  AMP_ASSIGN_OR_RETURN(ClassLoss c, PrepareClassLoss(b, -1.0));
  b.dx.assign(b.node().num_inputs(), nullptr);
  b.dx[0] = b.Op("Mul", {c.one_hot, c.scale});
  return Status::Ok();
}

}  // namespace

std::vector<OpDef> LossOps() {
  return {
      {.op_type = "SoftmaxCrossEntropyLoss",
       .arity = {2, 3, 1, 2},
       .infer = InferSoftmaxCrossEntropy,
       .precision = {OpClass::kFp32, "losses are computed in FP32"},
       .shape_inputs = {1},
       .grad = GradSoftmaxCrossEntropy,
       .nondiff_inputs = {1, 2}},
      {.domain = "ai.amp",
       .op_type = "SoftmaxCrossEntropyGrad",
       .arity = {3, 3, 1, 2},
       .infer = InferSoftmaxCrossEntropyGrad,
       .precision = {OpClass::kNone, "FP32 by construction (fuse-cross-entropy)"},
       .no_grad = "made by fusion after autodiff: never differentiated"},
      {.domain = "ai.amp",
       .op_type = "SoftmaxCrossEntropy",
       .arity = {3, 3, 2, 3},
       .infer = InferSoftmaxCrossEntropyFused,
       .precision = {OpClass::kNone, "FP32 by construction (fuse-cross-entropy)"},
       .no_grad = "made by fusion after autodiff: never differentiated"},
      {.op_type = "NegativeLogLikelihoodLoss",
       .arity = {2, 3, 1, 1},
       .infer = InferSoftmaxCrossEntropy,
       .precision = {OpClass::kFp32, "losses are computed in FP32"},
       .shape_inputs = {1},
       .grad = GradNegativeLogLikelihood,
       .nondiff_inputs = {1, 2}},
  };
}

}  // namespace amp
