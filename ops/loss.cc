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

StatusOr<ClassLoss> PrepareClassLoss(G& b, double on) {
  const Node& n = b.node();
  if (n.num_inputs() > 2 && n.input(2))
    return Unimplemented(n.Describe(), ": class weights are not supported in the gradient");
  if (n.HasAttr("ignore_index"))
    return Unimplemented(n.Describe(), ": ignore_index is not supported in the gradient");
  const Shape& xs = ShapeOrDie(b.x(0));
  if (xs.size() < 2 || !xs[1].is_static())
    return InvalidArgument(n.Describe(),
                           ": the number of classes (dim 1 of the input) must be static");
  DType t = b.x(0)->dtype();
  Node* depth = b.Make("Constant", {});
  depth->SetAttr("value", Attribute::FromTensor(
                              Tensor::FromVector<int64_t>(DType::kInt64, {}, {xs[1].value()})));
  Tensor values(t, {2});
  values.SetDouble(0, 0.0);
  values.SetDouble(1, on);
  Node* vc = b.Make("Constant", {});
  vc->SetAttr("value", Attribute::FromTensor(values));
  Node* oh = b.Make("OneHot", {b.x(1), depth->output(0), vc->output(0)});
  oh->SetAttr("axis", Attribute::Int(1));
  std::string reduction = n.GetString("reduction", "mean");
  Value* scale = b.dy(0);
  if (reduction == "mean") {
    Node* count = b.Make("Cast", {b.Op("Size", {b.x(1)})});
    count->SetAttr("to", Attribute::Int(static_cast<int64_t>(t)));
    scale = b.Op("Div", {b.dy(0), count->output(0)});
  } else if (reduction == "none") {
    scale = b.Op("Unsqueeze", {b.dy(0), b.Ints({1})});
  }
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
