// Pooling: MaxPool, AveragePool, LpPool and the global pools.
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

Status InferPool(Ctx& c) {  // MaxPool, AveragePool, LpPool
  const auto& x = c.input_shape(0);
  auto kernel = c.node().GetInts("kernel_shape");
  if (kernel.empty()) return c.Error("kernel_shape is required");
  if (!x) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    if (c.num_outputs() > 1) c.SetOutput(1, DType::kInt64, std::nullopt);
    return Status::Ok();
  }
  AMP_ASSIGN_OR_RETURN(Shape spatial,
                       SpatialOut(c, *x, kernel, c.node().GetInt("ceil_mode", 0) != 0));
  Shape out{(*x)[0], (*x)[1]};
  out.insert(out.end(), spatial.begin(), spatial.end());
  c.SetOutput(0, c.input_dtype(0), out);
  if (c.num_outputs() > 1) c.SetOutput(1, DType::kInt64, out);  // MaxPool indices
  return Status::Ok();
}

// ai.amp MaxPoolGrad (fuse-max-pool-grad): MaxPool's input gradient from the
// output gradient dy and the input x (float types, which may differ: O1
// sums the gradient in FP32 beside a half pool), MaxPool's attributes
// (storage_order 0): dx is dy's type and x's shape, zero but where a
// window's maximum came from, which gets the sum of those windows' dy
// (windows in order, in dy's type: ScatterElements add over MaxPool's
// indices), then with out_type rounded to that float type (a Cast after
// it). The maxima are found again in x, so the forward keeps no int64
// indices for the backward.
Status InferMaxPoolGrad(Ctx& c) {
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  AMP_RETURN_IF_ERROR(RequireFloat(c, 1));
  if (c.node().GetInt("storage_order", 0) != 0) return c.Error("needs storage_order 0");
  const auto& dy = c.input_shape(0);
  const auto& x = c.input_shape(1);
  auto kernel = c.node().GetInts("kernel_shape");
  if (kernel.empty()) return c.Error("kernel_shape is required");
  if (x && dy) {
    if (x->size() != kernel.size() + 2 || dy->size() != x->size())
      return c.Error("x and dy must have rank ", kernel.size() + 2, " for this kernel_shape");
    AMP_ASSIGN_OR_RETURN(Shape spatial,
                         SpatialOut(c, *x, kernel, c.node().GetInt("ceil_mode", 0) != 0));
    Shape want{(*x)[0], (*x)[1]};
    want.insert(want.end(), spatial.begin(), spatial.end());
    for (size_t i = 0; i < want.size(); ++i)
      if (want[i].is_static() && (*dy)[i].is_static() && want[i].value() != (*dy)[i].value())
        return c.Error("dy is ", ShapeToString(*dy), ", but MaxPool of x ", ShapeToString(*x),
                       " gives ", ShapeToString(want));
  }
  DType out = c.input_dtype(0);
  if (c.node().HasAttr("out_type")) {
    out = static_cast<DType>(c.node().GetInt("out_type", 0));
    if (!IsFloat(out)) return c.Error("out_type must be a float type");
  }
  c.SetOutput(0, out, x);
  return Status::Ok();
}

Status InferGlobalPool(Ctx& c) {
  const auto& x = c.input_shape(0);
  if (!x) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  if (x->size() < 3) return c.Error("input must have rank >= 3");
  Shape out{(*x)[0], (*x)[1]};
  out.resize(x->size(), Dim(1));
  c.SetOutput(0, c.input_dtype(0), out);
  return Status::Ok();
}

// ---- gradients ----

Status GradMaxPool(G& b) {
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

Status GradGlobalAveragePool(G& b) {
  const Shape& xs = ShapeOrDie(b.x(0));
  if (xs.size() < 2) return InvalidArgument(b.node().Describe(), ": input rank must be >= 2");
  auto spatial = StaticNumElements(Shape(xs.begin() + 2, xs.end()));
  if (!spatial)
    return InvalidArgument(b.node().Describe(), ": the gradient needs static spatial dims");
  Value* e = b.Op("Expand", {b.dy(0), b.ShapeOf(b.x(0))});
  b.dx = {b.Op("Div", {e, b.Scalar(static_cast<double>(*spatial), b.x(0)->dtype())})};
  return Status::Ok();
}

// GlobalMaxPool: dy where x equals the maximum of its map, shared evenly
// among ties (as ReduceMax's rule).
Status GradGlobalMaxPool(G& b) {
  const Shape& xs = ShapeOrDie(b.x(0));
  if (xs.size() < 3) return InvalidArgument(b.node().Describe(), ": input rank must be >= 3");
  std::vector<int64_t> spatial;
  for (size_t k = 2; k < xs.size(); ++k) spatial.push_back(static_cast<int64_t>(k));
  Node* mask = b.Make("Cast", {b.Op("Equal", {b.x(0), b.y(0)})});
  mask->SetAttr("to", Attribute::Int(static_cast<int64_t>(b.x(0)->dtype())));
  Value* m = mask->output(0);
  Value* share = b.Op("Div", {m, b.Reduce("ReduceSum", m, spatial, true)});
  b.dx = {b.Op("Mul", {share, b.Op("Expand", {b.dy(0), b.ShapeOf(b.x(0))})})};
  return Status::Ok();
}

Status GradAveragePool(G& b) {  // a grouped ConvTranspose with a constant 1/(kh*kw) kernel
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

}  // namespace

std::vector<OpDef> PoolOps() {
  return {
      {.op_type = "MaxPool",
       .arity = {1, 1, 1, 2},
       .infer = InferPool,
       .precision = {OpClass::kClear, "exact in any precision"},
       .grad = GradMaxPool},
      {.domain = "ai.amp",
       .op_type = "MaxPoolGrad",
       .arity = {2, 2, 1, 1},
       .infer = InferMaxPoolGrad,
       .precision = {OpClass::kNone, "made by fuse-max-pool-grad after precision was decided"},
       .no_grad = "made by fusion after autodiff: never differentiated"},
      {.op_type = "AveragePool",
       .arity = {1, 1, 1, 1},
       .infer = InferPool,
       .precision = {OpClass::kInfer, "small windowed mean: half between half ops"},
       .grad = GradAveragePool},
      {.op_type = "LpPool",
       .arity = {1, 1, 1, 1},
       .infer = InferPool,
       .precision = {OpClass::kFp32, "p-norms are sums of powers"},
       .no_grad = "no gradient rule yet"},
      {.op_type = "GlobalAveragePool",
       .arity = {1, 1, 1, 1},
       .infer = InferGlobalPool,
       .precision = {OpClass::kInfer, "windowed mean: half between half ops"},
       .grad = GradGlobalAveragePool},
      {.op_type = "GlobalMaxPool",
       .arity = {1, 1, 1, 1},
       .infer = InferGlobalPool,
       .precision = {OpClass::kClear, "exact in any precision"},
       .grad = GradGlobalMaxPool},
  };
}

}  // namespace amp
