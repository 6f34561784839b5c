// One rule per op family, then the table. Each rule reads the forward node's
// inputs and outputs (reusing forward values rather than recomputing them)
// and the gradients of its outputs, and writes GradBuilder::dx.
#include "passes/grad_rules.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>

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

namespace {

using G = GradBuilder;

// The shape of a value whose rank autodiff has checked to be known.
const Shape& ShapeOrDie(const Value* v) {
  static const Shape kEmpty;
  return v->type().shape ? *v->type().shape : kEmpty;
}

Status Elementwise(G& b) {  // Add, Sub, Mul, Div
  const std::string& op = b.node().op_type();
  Value* dy = b.dy(0);
  const Shape& out = ShapeOrDie(b.y(0));
  b.dx.assign(2, nullptr);
  for (size_t i = 0; i < 2; ++i) {
    if (!b.wants(i)) continue;
    Value* g = dy;
    if (op == "Sub" && i == 1) g = b.Op("Neg", {dy});
    if (op == "Mul") g = b.Op("Mul", {dy, b.x(1 - i)});
    if (op == "Div") {
      g = i == 0 ? b.Op("Div", {dy, b.x(1)})                                         // dy / b
                 : b.Op("Neg", {b.Op("Div", {b.Op("Mul", {dy, b.y(0)}), b.x(1)})});  // -dy * y / b
    }
    AMP_ASSIGN_OR_RETURN(b.dx[i], b.ReduceTo(g, out, b.x(i)));
  }
  return Status::Ok();
}

Status Relu(G& b) {
  Value* positive = b.Op("Greater", {b.y(0), b.Scalar(0.0, b.y(0)->dtype())});
  b.dx = {b.Op("Where", {positive, b.dy(0), b.Scalar(0.0, b.y(0)->dtype())})};
  return Status::Ok();
}

Status Identity(G& b) {
  b.dx.assign(b.node().num_inputs(), nullptr);
  b.dx[0] = b.dy(0);
  return Status::Ok();
}

// The data of an input known at compile time (initializer or Constant), or null.
const Tensor* ConstInput(const Value* v) {
  if (!v) return nullptr;
  if (v->has_initializer()) return v->initializer();
  if (v->producer() && v->producer()->op_type() == "Constant") {
    const Attribute* a = v->producer()->FindAttr("value");
    if (a && a->kind == Attribute::Kind::kTensor) return &a->t;
  }
  return nullptr;
}

Status Dropout(G& b) {
  // Ratio 0 (or inference mode) is the identity; otherwise the mask scales.
  const Tensor* ratio = ConstInput(b.node().input(1));
  bool identity = b.node().input(1) == nullptr ||
                  (ratio && ratio->num_elements() == 1 && ratio->GetDouble(0) == 0.0);
  b.dx.assign(b.node().num_inputs(), nullptr);
  if (identity) {
    b.dx[0] = b.dy(0);
    return Status::Ok();
  }
  Value* mask = b.node().num_outputs() > 1
                    ? b.y(1)
                    : b.graph().AddNodeOutput(&b.node(), b.y(0)->name() + "_mask");
  Value* keep = b.Op("Sub", {b.Scalar(1.0, b.x(1)->dtype()), b.x(1)});
  Node* m = b.Make("Cast", {mask});
  m->SetAttr("to", Attribute::Int(static_cast<int64_t>(b.y(0)->dtype())));
  b.dx[0] = b.Op("Div", {b.Op("Mul", {b.dy(0), m->output(0)}), keep});
  return Status::Ok();
}

Status Reshape(G& b) {  // Reshape, Flatten, Squeeze, Unsqueeze
  b.dx.assign(b.node().num_inputs(), nullptr);
  b.dx[0] = b.Op("Reshape", {b.dy(0), b.ShapeOf(b.x(0))});
  return Status::Ok();
}

Status Transpose(G& b) {
  std::vector<int64_t> perm = b.node().GetInts("perm");
  if (perm.empty())
    for (int64_t k = static_cast<int64_t>(ShapeOrDie(b.x(0)).size()) - 1; k >= 0; --k)
      perm.push_back(k);
  std::vector<int64_t> inverse(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) inverse[perm[k]] = static_cast<int64_t>(k);
  b.dx = {b.Transpose(b.dy(0), inverse)};
  return Status::Ok();
}

Status Gemm(G& b) {
  bool ta = b.node().GetInt("transA", 0) != 0, tb = b.node().GetInt("transB", 0) != 0;
  float alpha = b.node().GetFloat("alpha", 1.0f), beta = b.node().GetFloat("beta", 1.0f);
  Value* dy = b.dy(0);
  b.dx.assign(b.node().num_inputs(), nullptr);
  auto gemm = [&](Value* p, Value* q, bool t1, bool t2) {
    Node* n = b.Make("Gemm", {p, q});
    if (t1) n->SetAttr("transA", Attribute::Int(1));
    if (t2) n->SetAttr("transB", Attribute::Int(1));
    if (alpha != 1.0f) n->SetAttr("alpha", Attribute::Float(alpha));
    return n->output(0);
  };
  if (b.wants(0)) b.dx[0] = ta ? gemm(b.x(1), dy, tb, true) : gemm(dy, b.x(1), false, !tb);
  if (b.wants(1)) b.dx[1] = tb ? gemm(dy, b.x(0), true, ta) : gemm(b.x(0), dy, !ta, false);
  if (b.node().num_inputs() > 2 && b.wants(2)) {
    Value* g = beta == 1.0f ? dy : b.Op("Mul", {dy, b.Scalar(beta, b.y(0)->dtype())});
    AMP_ASSIGN_OR_RETURN(b.dx[2], b.ReduceTo(g, ShapeOrDie(b.y(0)), b.x(2)));
  }
  return Status::Ok();
}

Status MatMul(G& b) {
  const Shape& a = ShapeOrDie(b.x(0));
  const Shape& w = ShapeOrDie(b.x(1));
  if (a.size() < 2 || w.size() < 2)
    return Unimplemented(b.node().Describe(),
                         ": the gradient of MatMul with a 1-D input is not supported");
  auto swap_last = [&](Value* v, size_t rank) {
    std::vector<int64_t> perm;
    for (size_t k = 0; k + 2 < rank; ++k) perm.push_back(static_cast<int64_t>(k));
    perm.push_back(static_cast<int64_t>(rank - 1));
    perm.push_back(static_cast<int64_t>(rank - 2));
    return b.Transpose(v, perm);
  };
  const Shape& out = ShapeOrDie(b.y(0));
  b.dx.assign(2, nullptr);
  if (b.wants(0)) {
    Value* g = b.Op("MatMul", {b.dy(0), swap_last(b.x(1), w.size())});
    Shape gshape = out;
    gshape.back() = a.back();
    AMP_ASSIGN_OR_RETURN(b.dx[0], b.ReduceTo(g, gshape, b.x(0)));
  }
  if (b.wants(1)) {
    Value* g = b.Op("MatMul", {swap_last(b.x(0), a.size()), b.dy(0)});
    Shape gshape = out;
    gshape[gshape.size() - 2] = a.back();
    AMP_ASSIGN_OR_RETURN(b.dx[1], b.ReduceTo(g, gshape, b.x(1)));
  }
  return Status::Ok();
}

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

Status SoftmaxCrossEntropy(G& b) {  // dX = (softmax(x) - onehot) * scale
  AMP_ASSIGN_OR_RETURN(ClassLoss c, PrepareClassLoss(b, 1.0));
  Node* sm = b.Make("Softmax", {b.x(0)});
  sm->SetAttr("axis", Attribute::Int(1));
  b.dx.assign(b.node().num_inputs(), nullptr);
  b.dx[0] = b.Op("Mul", {b.Op("Sub", {sm->output(0), c.one_hot}), c.scale});
  return Status::Ok();
}

Status NegativeLogLikelihood(G& b) {  // dX = -onehot * scale
  AMP_ASSIGN_OR_RETURN(ClassLoss c, PrepareClassLoss(b, -1.0));
  b.dx.assign(b.node().num_inputs(), nullptr);
  b.dx[0] = b.Op("Mul", {c.one_hot, c.scale});
  return Status::Ok();
}

Status Softmax(G& b) {  // Softmax and LogSoftmax (opset 13: one axis)
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

// Normalization over `axes` with recomputed statistics:
// dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
Value* NormalizeBackward(G& b, Value* x, Value* dxhat, const std::vector<int64_t>& axes, double eps,
                         Value** xhat_out) {
  Value* mean = b.Reduce("ReduceMean", x, axes, true);
  Value* xc = b.Op("Sub", {x, mean});
  Value* var = b.Reduce("ReduceMean", b.Op("Mul", {xc, xc}), axes, true);
  Value* invstd =
      b.Op("Reciprocal", {b.Op("Sqrt", {b.Op("Add", {var, b.Scalar(eps, x->dtype())})})});
  Value* xhat = b.Op("Mul", {xc, invstd});
  *xhat_out = xhat;
  Value* m1 = b.Reduce("ReduceMean", dxhat, axes, true);
  Value* m2 = b.Reduce("ReduceMean", b.Op("Mul", {dxhat, xhat}), axes, true);
  return b.Op("Mul", {invstd, b.Op("Sub", {b.Op("Sub", {dxhat, m1}), b.Op("Mul", {xhat, m2})})});
}

Status BatchNorm(G& b) {
  const Node& n = b.node();
  if (n.GetInt("training_mode", 0) == 0)
    return Unimplemented(
        n.Describe(),
        ": the gradient of BatchNormalization in inference mode is not supported; export "
        "the model in training mode");
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

Status LayerNorm(G& b) {
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

Status Conv(G& b) {
  const Node& n = b.node();
  const Shape& xs = ShapeOrDie(b.x(0));
  const Shape& ws = ShapeOrDie(b.x(1));
  const Shape& ys = ShapeOrDie(b.y(0));
  if (xs.size() != 4) return Unimplemented(n.Describe(), ": only 2-D convolutions have a gradient");
  int64_t group = n.GetInt("group", 1);
  if (n.GetString("auto_pad", "NOTSET") != "NOTSET")
    return Unimplemented(n.Describe(), ": auto_pad has no gradient yet; export with explicit pads");
  auto s = n.GetInts("strides", {1, 1}), d = n.GetInts("dilations", {1, 1}),
       p = n.GetInts("pads", {0, 0, 0, 0});
  auto xd = StaticDims(xs), wd = StaticDims(ws);
  if (!wd || !(xs[2].is_static() && xs[3].is_static() && ys[2].is_static() && ys[3].is_static()))
    return InvalidArgument(n.Describe(), ": the gradient needs static spatial and kernel dims");
  int64_t kh = (*wd)[2], kw = (*wd)[3];
  b.dx.assign(n.num_inputs(), nullptr);
  if (b.wants(0)) {
    std::vector<int64_t> outpad = {
        xs[2].value() - (s[0] * (ys[2].value() - 1) + (kh - 1) * d[0] + 1 - p[0] - p[2]),
        xs[3].value() - (s[1] * (ys[3].value() - 1) + (kw - 1) * d[1] + 1 - p[1] - p[3])};
    // ConvTranspose reads Conv's [O, C/g, kh, kw] weight as its own layout.
    Node* ct = b.Make("ConvTranspose", {b.dy(0), b.x(1)});
    if (group != 1) ct->SetAttr("group", Attribute::Int(group));
    ct->SetAttr("strides", Attribute::Ints(s));
    ct->SetAttr("dilations", Attribute::Ints(d));
    ct->SetAttr("pads", Attribute::Ints(p));
    ct->SetAttr("kernel_shape", Attribute::Ints({kh, kw}));
    if (outpad[0] || outpad[1]) ct->SetAttr("output_padding", Attribute::Ints(outpad));
    b.dx[0] = ct->output(0);
  }
  if (b.wants(1)) {
    // dW[o,c,i,j] = sum_{n,h,w} X[n,c,h*s+i*d,w*s+j*d] dY[n,o,h,w]: a Conv of
    // X^T (C,N,H,W) with dY^T (O,N,Ho,Wo) as kernel, strides and dilations swapped.
    int64_t full_h = (xs[2].value() + p[0] + p[2] - s[0] * (ys[2].value() - 1) - 1) / d[0] + 1;
    int64_t full_w = (xs[3].value() + p[1] + p[3] - s[1] * (ys[3].value() - 1) - 1) / d[1] + 1;
    auto weight_grad = [&](Value* x, Value* dy) {
      Value* xt = b.Transpose(x, {1, 0, 2, 3});
      Value* dyt = b.Transpose(dy, {1, 0, 2, 3});
      Node* c = b.Make("Conv", {xt, dyt});
      c->SetAttr("strides", Attribute::Ints(d));
      c->SetAttr("dilations", Attribute::Ints(s));
      c->SetAttr("pads", Attribute::Ints(p));
      Value* r = c->output(0);
      if (full_h != kh || full_w != kw)
        r = b.Op("Slice", {r, b.Ints({0, 0}), b.Ints({kh, kw}), b.Ints({2, 3})});
      return b.Transpose(r, {1, 0, 2, 3});
    };
    if (group == 1) {
      b.dx[1] = weight_grad(b.x(0), b.dy(0));
    } else {
      // Each group's weights see only its own input and output channels.
      Node* xs_split = b.Make("Split", {b.x(0)}, static_cast<int>(group));
      xs_split->SetAttr("axis", Attribute::Int(1));
      Node* dy_split = b.Make("Split", {b.dy(0)}, static_cast<int>(group));
      dy_split->SetAttr("axis", Attribute::Int(1));
      if (b.opset() >= 18) {
        xs_split->SetAttr("num_outputs", Attribute::Int(group));
        dy_split->SetAttr("num_outputs", Attribute::Int(group));
      }
      std::vector<Value*> parts;
      for (int64_t k = 0; k < group; ++k)
        parts.push_back(weight_grad(xs_split->output(k), dy_split->output(k)));
      Node* cat = b.Make("Concat", parts);
      cat->SetAttr("axis", Attribute::Int(0));
      b.dx[1] = cat->output(0);
    }
  }
  if (n.num_inputs() > 2 && b.wants(2)) b.dx[2] = b.Reduce("ReduceSum", b.dy(0), {0, 2, 3}, false);
  return Status::Ok();
}

Status MaxPool(G& b) {
  Node& n = b.node();
  if (b.opset() < 16)
    return Unimplemented(n.Describe(),
                         ": the MaxPool gradient needs opset 16 (ScatterElements add)");
  if (n.GetInt("storage_order", 0) != 0)
    return Unimplemented(n.Describe(), ": storage_order=1 has no gradient");
  Value* indices =
      n.num_outputs() > 1 ? b.y(1) : b.graph().AddNodeOutput(&n, b.y(0)->name() + "_indices");
  Value* flat = b.Ints({-1});
  Value* numel = b.Op("Reshape", {b.Op("Size", {b.x(0)}), b.Ints({1})});
  Node* zeros = b.Make("ConstantOfShape", {numel});
  Tensor zero(b.x(0)->dtype(), {1});
  zeros->SetAttr("value", Attribute::FromTensor(zero));
  Node* scatter = b.Make("ScatterElements", {zeros->output(0), b.Op("Reshape", {indices, flat}),
                                             b.Op("Reshape", {b.dy(0), flat})});
  scatter->SetAttr("axis", Attribute::Int(0));
  scatter->SetAttr("reduction", Attribute::String("add"));
  b.dx = {b.Op("Reshape", {scatter->output(0), b.ShapeOf(b.x(0))})};
  return Status::Ok();
}

Status GlobalAveragePool(G& b) {
  const Shape& xs = ShapeOrDie(b.x(0));
  if (xs.size() < 2) return InvalidArgument(b.node().Describe(), ": input rank must be >= 2");
  auto spatial = StaticNumElements(Shape(xs.begin() + 2, xs.end()));
  if (!spatial)
    return InvalidArgument(b.node().Describe(), ": the gradient needs static spatial dims");
  Value* e = b.Op("Expand", {b.dy(0), b.ShapeOf(b.x(0))});
  b.dx = {b.Op("Div", {e, b.Scalar(static_cast<double>(*spatial), b.x(0)->dtype())})};
  return Status::Ok();
}

Status Unary(G& b) {
  const std::string& op = b.node().op_type();
  Value* dy = b.dy(0);
  Value* x = b.x(0);
  Value* y = b.y(0);
  DType t = x->dtype();
  Value* g = nullptr;
  if (op == "Neg")
    g = b.Op("Neg", {dy});
  else if (op == "Abs")
    g = b.Op("Mul", {dy, b.Op("Sign", {x})});
  else if (op == "Exp")
    g = b.Op("Mul", {dy, y});
  else if (op == "Log")
    g = b.Op("Div", {dy, x});
  else if (op == "Sqrt")
    g = b.Op("Div", {dy, b.Op("Mul", {y, b.Scalar(2.0, t)})});
  else if (op == "Reciprocal")
    g = b.Op("Neg", {b.Op("Mul", {dy, b.Op("Mul", {y, y})})});
  else if (op == "Tanh")
    g = b.Op("Mul", {dy, b.Op("Sub", {b.Scalar(1.0, t), b.Op("Mul", {y, y})})});
  else if (op == "Sigmoid")
    g = b.Op("Mul", {dy, b.Op("Mul", {y, b.Op("Sub", {b.Scalar(1.0, t), y})})});
  else if (op == "Erf") {
    Value* e = b.Op("Exp", {b.Op("Neg", {b.Op("Mul", {x, x})})});
    g = b.Op("Mul", {dy, b.Op("Mul", {e, b.Scalar(2.0 / std::sqrt(std::numbers::pi), t)})});
  } else if (op == "LeakyRelu") {
    Value* pos = b.Op("Greater", {x, b.Scalar(0.0, t)});
    float alpha = b.node().GetFloat("alpha", 0.01f);
    g = b.Op("Where", {pos, dy, b.Op("Mul", {dy, b.Scalar(alpha, t)})});
  } else if (op == "Gelu") {
    if (b.node().GetString("approximate", "none") != "none")
      return Unimplemented(b.node().Describe(),
                           ": the gradient of tanh-approximated Gelu is not supported");
    // d/dx x*Phi(x) = Phi(x) + x*phi(x)
    Value* cdf = b.Op(
        "Mul", {b.Scalar(0.5, t),
                b.Op("Add", {b.Scalar(1.0, t),
                             b.Op("Erf", {b.Op("Mul", {x, b.Scalar(1.0 / std::sqrt(2.0), t)})})})});
    Value* pdf = b.Op("Mul", {b.Op("Exp", {b.Op("Mul", {b.Op("Mul", {x, x}), b.Scalar(-0.5, t)})}),
                              b.Scalar(1.0 / std::sqrt(2.0 * std::numbers::pi), t)});
    g = b.Op("Mul", {dy, b.Op("Add", {cdf, b.Op("Mul", {x, pdf})})});
  }
  b.dx = {g};
  return Status::Ok();
}

Status Pow(G& b) {
  const Tensor* c = ConstInput(b.x(1));
  if (!c || c->num_elements() != 1)
    return Unimplemented(b.node().Describe(),
                         ": the gradient of Pow needs a constant scalar exponent");
  double p = c->GetDouble(0);
  DType t = b.x(0)->dtype();
  Value* pm1 = b.Op("Pow", {b.x(0), b.Scalar(p - 1.0, t)});
  b.dx = {b.Op("Mul", {b.dy(0), b.Op("Mul", {pm1, b.Scalar(p, t)})}), nullptr};
  return Status::Ok();
}

Status ReduceMeanSum(G& b) {
  const Node& n = b.node();
  const Shape& xs = ShapeOrDie(b.x(0));
  int64_t rank = static_cast<int64_t>(xs.size());
  std::vector<int64_t> axes;
  bool axes_input = n.op_type() == "ReduceSum" || b.opset() >= 18;
  if (axes_input && n.num_inputs() > 1 && n.input(1)) {
    const Tensor* t = ConstInput(n.input(1));
    if (!t) return Unimplemented(n.Describe(), ": the gradient needs constant axes");
    for (int64_t i = 0; i < t->num_elements(); ++i) axes.push_back(t->GetInt(i));
  } else if (!axes_input) {
    axes = n.GetInts("axes");
  }
  if (axes.empty())
    for (int64_t k = 0; k < rank; ++k) axes.push_back(k);
  for (auto& a : axes) {
    if (a < -rank || a >= rank)
      return InvalidArgument(n.Describe(), ": axis ", a, " is out of range for rank ", rank);
    a = a < 0 ? a + rank : a;
  }
  Value* g = b.dy(0);
  if (n.GetInt("keepdims", 1) == 0) g = b.Op("Unsqueeze", {g, b.Ints(axes)});
  g = b.Op("Expand", {g, b.ShapeOf(b.x(0))});
  if (n.op_type() == "ReduceMean") {
    Shape reduced;
    for (int64_t a : axes) reduced.push_back(xs[a]);
    auto count = StaticNumElements(reduced);
    if (count) {
      g = b.Op("Div", {g, b.Scalar(static_cast<double>(*count), b.x(0)->dtype())});
    } else {
      Node* c = b.Make("Cast", {b.Op("Div", {b.Op("Size", {b.x(0)}), b.Op("Size", {b.y(0)})})});
      c->SetAttr("to", Attribute::Int(static_cast<int64_t>(b.x(0)->dtype())));
      g = b.Op("Div", {g, c->output(0)});
    }
  }
  b.dx.assign(n.num_inputs(), nullptr);
  b.dx[0] = g;
  return Status::Ok();
}

Status Gather(G& b) {
  const Node& n = b.node();
  if (n.GetInt("axis", 0) != 0)
    return Unimplemented(n.Describe(), ": Gather's gradient supports axis 0 only");
  if (b.opset() < 16)
    return Unimplemented(n.Describe(), ": Gather's gradient needs opset 16 (ScatterND add)");
  Node* zeros = b.Make("ConstantOfShape", {b.ShapeOf(b.x(0))});
  zeros->SetAttr("value", Attribute::FromTensor(Tensor(b.x(0)->dtype(), {1})));
  Value* idx = b.Op("Unsqueeze", {b.x(1), b.Ints({-1})});
  Node* s = b.Make("ScatterND", {zeros->output(0), idx, b.dy(0)});
  s->SetAttr("reduction", Attribute::String("add"));
  b.dx = {s->output(0), nullptr};
  return Status::Ok();
}

Status Concat(G& b) {
  const Node& n = b.node();
  int64_t rank = static_cast<int64_t>(ShapeOrDie(b.y(0)).size());
  int64_t axis = n.GetInt("axis", 0);
  if (axis < -rank || axis >= rank)
    return InvalidArgument(n.Describe(), ": axis ", axis, " is out of range for rank ", rank);
  if (axis < 0) axis += rank;
  b.dx.assign(n.num_inputs(), nullptr);
  int64_t offset = 0;
  for (size_t i = 0; i < n.num_inputs(); ++i) {
    const Shape& s = ShapeOrDie(b.x(i));
    if (static_cast<int64_t>(s.size()) != rank)
      return InvalidArgument(n.Describe(), ": input ", i, " has rank ", s.size(), ", not ", rank);
    if (!s[axis].is_static())
      return InvalidArgument(n.Describe(), ": the gradient needs static sizes on the concat axis");
    int64_t len = s[axis].value();
    if (b.wants(i))
      b.dx[i] = b.Op("Slice", {b.dy(0), b.Ints({offset}), b.Ints({offset + len}), b.Ints({axis})});
    offset += len;
  }
  return Status::Ok();
}

Status Where(G& b) {
  const Shape& out = ShapeOrDie(b.y(0));
  Value* zero = b.Scalar(0.0, b.y(0)->dtype());
  b.dx.assign(3, nullptr);
  if (b.wants(1)) {
    AMP_ASSIGN_OR_RETURN(b.dx[1], b.ReduceTo(b.Op("Where", {b.x(0), b.dy(0), zero}), out, b.x(1)));
  }
  if (b.wants(2)) {
    AMP_ASSIGN_OR_RETURN(b.dx[2], b.ReduceTo(b.Op("Where", {b.x(0), zero, b.dy(0)}), out, b.x(2)));
  }
  return Status::Ok();
}

Status Expand(G& b) {
  b.dx.assign(2, nullptr);
  AMP_ASSIGN_OR_RETURN(b.dx[0], b.ReduceTo(b.dy(0), ShapeOrDie(b.y(0)), b.x(0)));
  return Status::Ok();
}

Status Cast(G& b) {
  Node* c = b.Make("Cast", {b.dy(0)});
  c->SetAttr("to", Attribute::Int(static_cast<int64_t>(b.x(0)->dtype())));
  b.dx = {c->output(0)};
  return Status::Ok();
}

Status Split(G& b) {
  const Node& n = b.node();
  std::vector<Value*> parts;
  for (size_t i = 0; i < n.num_outputs(); ++i) {
    Value* g = b.dy(i);
    if (!g) {
      Node* z = b.Make("ConstantOfShape", {b.ShapeOf(b.y(i))});
      z->SetAttr("value", Attribute::FromTensor(Tensor(b.y(i)->dtype(), {1})));
      g = z->output(0);
    }
    parts.push_back(g);
  }
  Node* c = b.Make("Concat", parts);
  c->SetAttr("axis", Attribute::Int(n.GetInt("axis", 0)));
  b.dx.assign(n.num_inputs(), nullptr);
  b.dx[0] = c->output(0);
  return Status::Ok();
}

Status Slice(G& b) {  // dX = dY padded back to X's shape (steps of 1)
  const Node& n = b.node();
  auto dims = StaticDims(ShapeOrDie(b.x(0)));
  const Tensor* starts = ConstInput(b.x(1));
  const Tensor* ends = ConstInput(b.x(2));
  const Tensor* axes = n.num_inputs() > 3 ? ConstInput(b.x(3)) : nullptr;
  const Tensor* steps = n.num_inputs() > 4 ? ConstInput(b.x(4)) : nullptr;
  if (!dims || !starts || !ends || (n.num_inputs() > 3 && n.input(3) && !axes) ||
      (n.num_inputs() > 4 && n.input(4) && !steps))
    return Unimplemented(
        n.Describe(),
        ": Slice's gradient needs a static input shape and constant starts, ends, axes");
  int64_t rank = static_cast<int64_t>(dims->size());
  std::vector<int64_t> pads(2 * rank, 0);
  for (int64_t k = 0; k < starts->num_elements(); ++k) {
    if (steps && steps->GetInt(k) != 1)
      return Unimplemented(n.Describe(), ": Slice's gradient supports step 1 only");
    int64_t a = axes ? axes->GetInt(k) : k;
    if (a < 0) a += rank;
    int64_t d = (*dims)[a];
    int64_t s = starts->GetInt(k), e = ends->GetInt(k);
    if (s < 0) s += d;
    if (e < 0) e += d;
    s = std::clamp<int64_t>(s, 0, d);
    e = std::clamp<int64_t>(e, s, d);
    pads[a] = s;
    pads[a + rank] = d - e;
  }
  b.dx.assign(n.num_inputs(), nullptr);
  b.dx[0] = b.Op("Pad", {b.dy(0), b.Ints(pads)});
  return Status::Ok();
}

Status AveragePool(G& b) {  // a grouped ConvTranspose with a constant 1/(kh*kw) kernel
  const Node& n = b.node();
  const Shape& xs = ShapeOrDie(b.x(0));
  const Shape& ys = ShapeOrDie(b.y(0));
  auto k = n.GetInts("kernel_shape");
  auto s = n.GetInts("strides", {1, 1}), p = n.GetInts("pads", {0, 0, 0, 0});
  bool padded = std::any_of(p.begin(), p.end(), [](int64_t v) { return v != 0; });
  if (xs.size() != 4 || k.size() != 2 || n.GetInt("ceil_mode", 0) != 0 ||
      n.GetString("auto_pad", "NOTSET") != "NOTSET" ||
      (padded && n.GetInt("count_include_pad", 0) == 0) || !xs[1].is_static() ||
      !xs[2].is_static() || !xs[3].is_static() || !ys[2].is_static() || !ys[3].is_static())
    return Unimplemented(
        n.Describe(),
        ": AveragePool's gradient supports 2-D pools with static shapes, no ceil_mode, "
        "and padding only with count_include_pad=1");
  int64_t c = xs[1].value();
  Tensor w(b.x(0)->dtype(), {c, 1, k[0], k[1]});
  for (int64_t i = 0; i < w.num_elements(); ++i)
    w.SetDouble(i, 1.0 / static_cast<double>(k[0] * k[1]));
  Node* wc = b.Make("Constant", {});
  wc->SetAttr("value", Attribute::FromTensor(w));
  Node* ct = b.Make("ConvTranspose", {b.dy(0), wc->output(0)});
  ct->SetAttr("group", Attribute::Int(c));
  ct->SetAttr("strides", Attribute::Ints(s));
  ct->SetAttr("pads", Attribute::Ints(p));
  ct->SetAttr("kernel_shape", Attribute::Ints(k));
  std::vector<int64_t> outpad = {xs[2].value() - (s[0] * (ys[2].value() - 1) + k[0] - p[0] - p[2]),
                                 xs[3].value() - (s[1] * (ys[3].value() - 1) + k[1] - p[1] - p[3])};
  if (outpad[0] || outpad[1]) ct->SetAttr("output_padding", Attribute::Ints(outpad));
  b.dx = {ct->output(0)};
  return Status::Ok();
}

const std::map<std::string, GradFn>& Rules() {
  static const std::map<std::string, GradFn> rules = {
      {"Add", Elementwise},
      {"Sub", Elementwise},
      {"Mul", Elementwise},
      {"Div", Elementwise},
      {"Relu", Relu},
      {"Identity", Identity},
      {"Dropout", Dropout},
      {"Reshape", Reshape},
      {"Flatten", Reshape},
      {"Squeeze", Reshape},
      {"Unsqueeze", Reshape},
      {"Transpose", Transpose},
      {"Gemm", Gemm},
      {"MatMul", MatMul},
      {"SoftmaxCrossEntropyLoss", SoftmaxCrossEntropy},
      {"NegativeLogLikelihoodLoss", NegativeLogLikelihood},
      {"Softmax", Softmax},
      {"LogSoftmax", Softmax},
      {"BatchNormalization", BatchNorm},
      {"LayerNormalization", LayerNorm},
      {"Conv", Conv},
      {"MaxPool", MaxPool},
      {"GlobalAveragePool", GlobalAveragePool},
      {"Neg", Unary},
      {"Abs", Unary},
      {"Exp", Unary},
      {"Log", Unary},
      {"Sqrt", Unary},
      {"Reciprocal", Unary},
      {"Tanh", Unary},
      {"Sigmoid", Unary},
      {"Erf", Unary},
      {"LeakyRelu", Unary},
      {"Gelu", Unary},
      {"Pow", Pow},
      {"ReduceMean", ReduceMeanSum},
      {"ReduceSum", ReduceMeanSum},
      {"Gather", Gather},
      {"Concat", Concat},
      {"Where", Where},
      {"Expand", Expand},
      {"Cast", Cast},
      {"Split", Split},
      {"Slice", Slice},
      {"AveragePool", AveragePool},
  };
  return rules;
}

}  // namespace

bool GradRuleReadsShapes(const std::string& op_type) {
  GradFn rule = FindGradRule(op_type);
  return rule != nullptr && rule != Unary && rule != Reshape;
}

GradFn FindGradRule(const std::string& op_type) {
  auto it = Rules().find(op_type);
  return it == Rules().end() ? nullptr : it->second;
}

bool IsNonDifferentiableInput(const std::string& op, size_t i) {
  if (op == "BatchNormalization") return i >= 3;  // running statistics
  if (op == "Reshape" || op == "Expand" || op == "Squeeze" || op == "Unsqueeze" || op == "Gather" ||
      op == "SoftmaxCrossEntropyLoss" || op == "NegativeLogLikelihoodLoss" || op == "ReduceSum" ||
      op == "ReduceMean" || op == "Split" || op == "Dropout" || op == "Pow" || op == "Slice")
    return i >= 1;
  if (op == "Where") return i == 0;
  return false;
}

}  // namespace amp
