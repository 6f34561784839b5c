#include "ops/grad_builder.h"

#include <algorithm>

#include "compiler/const_eval.h"

namespace amp {

Node* GradBuilder::Make(const std::string& op, const std::vector<Value*>& inputs, int num_outputs) {
  std::string base = node_.num_outputs() ? node_.output(0)->name() : "g";
  std::vector<std::string> names;
  for (int i = 0; i < num_outputs; ++i) names.push_back(base + "_grad");
  return g_.AddNode(op, inputs, names);
}

Value* GradBuilder::Scalar(double v, DType dtype) {
  Tensor t(dtype, {});
  t.SetDouble(0, v);
  Node* c = Make("Constant", {});
  c->SetAttr("value", Attribute::FromTensor(t));
  return c->output(0);
}

Value* GradBuilder::Ints(const std::vector<int64_t>& v) {
  Node* c = Make("Constant", {});
  c->SetAttr("value", Attribute::FromTensor(Tensor::FromVector<int64_t>(
                          DType::kInt64, {static_cast<int64_t>(v.size())}, v)));
  return c->output(0);
}

Value* GradBuilder::Reduce(const std::string& op, Value* x, const std::vector<int64_t>& axes,
                           bool keepdims) {
  bool axes_input = op == "ReduceSum" || opset() >= 18;
  Node* n = axes_input ? Make(op, {x, Ints(axes)}) : Make(op, {x});
  if (!axes_input) n->SetAttr("axes", Attribute::Ints(axes));
  n->SetAttr("keepdims", Attribute::Int(keepdims ? 1 : 0));
  return n->output(0);
}

Value* GradBuilder::Transpose(Value* v, const std::vector<int64_t>& perm) {
  Node* n = Make("Transpose", {v});
  n->SetAttr("perm", Attribute::Ints(perm));
  return n->output(0);
}

StatusOr<Value*> GradBuilder::ReduceTo(Value* grad, const Shape& from, const Value* like) {
  if (!like->type().shape)
    return InvalidArgument(node_.Describe(), ": input '", like->name(),
                           "' has an unknown rank; cannot reduce its gradient");
  const Shape& to = *like->type().shape;
  if (to.size() > from.size())
    return Internal(node_.Describe(), ": gradient of lower rank than its input");
  size_t lead = from.size() - to.size();
  std::vector<int64_t> axes;
  for (size_t k = 0; k < lead; ++k) axes.push_back(static_cast<int64_t>(k));
  for (size_t k = 0; k < to.size(); ++k) {
    const Dim& t = to[k];
    const Dim& f = from[lead + k];
    if (t.SameAs(f)) continue;
    if (t.is_static() && t.value() == 1) {
      if (!(f.is_static() && f.value() == 1)) axes.push_back(static_cast<int64_t>(lead + k));
      continue;
    }
    if (t.is_static() && f.is_static() && t.value() == f.value()) continue;
    // Exporters write a broadcast dim as a literal 1, so a dim that is not a
    // static 1 was not stretched (static dims that differ are a real error).
    if (t.is_static() && f.is_static())
      return InvalidArgument(node_.Describe(), ": input '", like->name(), "' (",
                             like->type().ToString(), ") does not broadcast to ",
                             ShapeToString(from));
  }
  if (axes.empty()) return grad;
  Value* summed = Reduce("ReduceSum", grad, axes, /*keepdims=*/true);
  if (lead == 0) return summed;
  Node* r = Make("Reshape", {summed, ShapeOf(const_cast<Value*>(like))});
  return r->output(0);
}

// The shape of a value whose rank autodiff has checked to be known.
const Shape& ShapeOrDie(const Value* v) {
  static const Shape kEmpty;
  return v->type().shape ? *v->type().shape : kEmpty;
}

std::optional<Tensor> ConstInput(const Value* v) {
  if (!v) return std::nullopt;
  if (v->has_initializer()) return *v->initializer();
  return ConstantNodeTensor(v);
}

}  // namespace amp
