// Reductions: Reduce*, ArgMax/ArgMin, TopK, CumSum.
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

Status InferReduce(Ctx& c) {
  const std::string& op = c.node().op_type();
  bool axes_as_input = op == "ReduceSum" || c.opset() >= 18;
  std::optional<std::vector<int64_t>> axes;
  bool axes_unknown = false;
  // (The kernels read an axes input wherever there is one: refuse it where
  // the opset has none, instead of inferring a reduction over every axis.)
  if (!axes_as_input && c.has_input(1))
    return c.Error(op, " takes its axes as an attribute before opset 18 (this model imports opset ",
                   c.opset(), "); an axes input needs opset 18");
  if (axes_as_input) {
    if (c.has_input(1)) {
      axes = ConstInts(c, 1);
      if (!axes) axes_unknown = true;
    }
  } else if (c.node().HasAttr("axes")) {
    axes = c.node().GetInts("axes");
  }
  bool keepdims = c.node().GetInt("keepdims", 1) != 0;
  bool noop = c.node().GetInt("noop_with_empty_axes", 0) != 0;
  DType out_type = (op == "ArgMax" || op == "ArgMin") ? DType::kInt64 : c.input_dtype(0);
  const auto& x = c.input_shape(0);
  if (!x || axes_unknown) {
    std::optional<Shape> s;
    if (x && keepdims) s = Shape(x->size(), Dim());
    c.SetOutput(0, out_type, s);
    return Status::Ok();
  }
  int64_t rank = static_cast<int64_t>(x->size());
  std::set<int64_t> reduce;
  if (op == "ArgMax" || op == "ArgMin") {
    AMP_ASSIGN_OR_RETURN(int64_t a, NormalizeAxis(c, c.node().GetInt("axis", 0), rank));
    reduce.insert(a);
  } else if (!axes || axes->empty()) {
    if (noop) {
      c.SetOutput(0, out_type, *x);
      return Status::Ok();
    }
    for (int64_t k = 0; k < rank; ++k) reduce.insert(k);
  } else {
    for (int64_t a : *axes) {
      AMP_ASSIGN_OR_RETURN(int64_t n, NormalizeAxis(c, a, rank));
      reduce.insert(n);
    }
  }
  Shape out;
  for (int64_t k = 0; k < rank; ++k) {
    if (!reduce.count(k))
      out.push_back((*x)[k]);
    else if (keepdims)
      out.push_back(Dim(1));
  }
  c.SetOutput(0, out_type, out);
  return Status::Ok();
}

Status InferCumSum(Ctx& c) { return InferUnary(c); }

Status InferTopK(Ctx& c) {
  const auto& x = c.input_shape(0);
  std::optional<Shape> out;
  if (x) {
    AMP_ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(c, c.node().GetInt("axis", -1), x->size()));
    out = *x;
    auto k = ConstInts(c, 1);
    (*out)[axis] = k && k->size() == 1 ? Dim((*k)[0]) : Dim();
  }
  c.SetOutput(0, c.input_dtype(0), out);
  c.SetOutput(1, DType::kInt64, out);
  return Status::Ok();
}

// ---- gradients ----

// The axes a Reduce* node reduces, normalized and sorted (every axis when
// none are given); nothing when noop_with_empty_axes makes it the identity.
StatusOr<std::optional<std::vector<int64_t>>> ReducedAxes(G& b) {
  const Node& n = b.node();
  int64_t rank = static_cast<int64_t>(ShapeOrDie(b.x(0)).size());
  std::vector<int64_t> axes;
  bool axes_input = n.op_type() == "ReduceSum" || b.opset() >= 18;
  if (axes_input && n.num_inputs() > 1 && n.input(1)) {
    std::optional<Tensor> t = ConstInput(n.input(1));
    if (!t) return Unimplemented(n.Describe(), ": the gradient needs constant axes");
    for (int64_t i = 0; i < t->num_elements(); ++i) axes.push_back(t->GetInt(i));
  } else if (!axes_input) {
    axes = n.GetInts("axes");
  }
  if (axes.empty()) {
    if (n.GetInt("noop_with_empty_axes", 0) != 0) return std::optional<std::vector<int64_t>>();
    for (int64_t k = 0; k < rank; ++k) axes.push_back(k);
  }
  for (auto& a : axes) {
    if (a < -rank || a >= rank)
      return InvalidArgument(n.Describe(), ": axis ", a, " is out of range for rank ", rank);
    a = a < 0 ? a + rank : a;
  }
  std::sort(axes.begin(), axes.end());
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  return std::optional<std::vector<int64_t>>(axes);
}

// `v` (shaped like the reduction's output) with the reduced axes kept as 1:
// it broadcasts against the input.
Value* KeepDims(G& b, Value* v, const std::vector<int64_t>& axes) {
  return b.node().GetInt("keepdims", 1) == 0 ? b.Op("Unsqueeze", {v, b.Ints(axes)}) : v;
}

Status GradReduceMeanSum(G& b) {
  const Node& n = b.node();
  const Shape& xs = ShapeOrDie(b.x(0));
  b.dx.assign(n.num_inputs(), nullptr);
  AMP_ASSIGN_OR_RETURN(auto reduced_axes, ReducedAxes(b));
  if (!reduced_axes) {
    b.dx[0] = b.dy(0);
    return Status::Ok();
  }
  const std::vector<int64_t>& axes = *reduced_axes;
  Value* g = KeepDims(b, b.dy(0), axes);
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
  b.dx[0] = g;
  return Status::Ok();
}

// The other reductions, as dy (kept dims, broadcast) times dy/dx:
//   ReduceMax/Min    where x equals the result, shared evenly among ties
//                    (torch.amax's rule)
//   ReduceL1         sign(x)
//   ReduceL2         x / y (0 where y is 0, as torch.linalg.vector_norm)
//   ReduceSumSquare  2 x
//   ReduceLogSum     1 / exp(y)         (1 / the sum)
//   ReduceLogSumExp  exp(x - y)         (the softmax over the axes)
Status GradReduceOther(G& b) {
  const Node& n = b.node();
  const std::string& op = n.op_type();
  b.dx.assign(n.num_inputs(), nullptr);
  AMP_ASSIGN_OR_RETURN(auto reduced_axes, ReducedAxes(b));
  if (!reduced_axes) {  // the identity
    if (op == "ReduceSumSquare") {
      b.dx[0] = b.Op("Mul", {b.dy(0), b.Op("Mul", {b.x(0), b.Scalar(2.0, b.x(0)->dtype())})});
      return Status::Ok();
    }
    if (op != "ReduceMax" && op != "ReduceMin" && op != "ReduceL2" && op != "ReduceL1")
      return Unimplemented(n.Describe(), ": the gradient of ", op,
                           " over no axes (noop_with_empty_axes) is not built");
    b.dx[0] = op == "ReduceL1" ? b.Op("Mul", {b.dy(0), b.Op("Sign", {b.x(0)})}) : b.dy(0);
    return Status::Ok();
  }
  const std::vector<int64_t>& axes = *reduced_axes;
  DType t = b.x(0)->dtype();
  Value* x = b.x(0);
  Value* dy = KeepDims(b, b.dy(0), axes);
  Value* y = KeepDims(b, b.y(0), axes);
  Value* local = nullptr;  // dy/dx, broadcast against x
  if (op == "ReduceMax" || op == "ReduceMin") {
    Node* mask = b.Make("Cast", {b.Op("Equal", {x, y})});
    mask->SetAttr("to", Attribute::Int(static_cast<int64_t>(t)));
    Value* m = mask->output(0);
    Value* ties = b.Reduce("ReduceSum", m, axes, true);
    local = b.Op("Div", {m, ties});
  } else if (op == "ReduceL1") {
    local = b.Op("Sign", {x});
  } else if (op == "ReduceL2") {
    Value* zero = b.Scalar(0.0, t);
    Value* is_zero = b.Op("Equal", {y, zero});
    Value* safe = b.Op("Where", {is_zero, b.Scalar(1.0, t), y});
    local = b.Op("Where", {is_zero, zero, b.Op("Div", {x, safe})});
  } else if (op == "ReduceSumSquare") {
    local = b.Op("Mul", {x, b.Scalar(2.0, t)});
  } else if (op == "ReduceLogSum") {
    local = b.Op("Reciprocal", {b.Op("Exp", {y})});
  } else if (op == "ReduceLogSumExp") {
    local = b.Op("Exp", {b.Op("Sub", {x, y})});
  } else {
    return Internal(n.Describe(), ": GradReduceOther does not handle ", op);
  }
  b.dx[0] = b.Op("Mul", {local, b.Op("Expand", {dy, b.ShapeOf(x)})});
  return Status::Ok();
}

// CumSum's gradient is the cumulative sum of dy the other way along the axis
// (exclusive stays exclusive).
Status GradCumSum(G& b) {
  Node* c = b.Make("CumSum", {b.dy(0), b.x(1)});
  c->SetAttr("exclusive", Attribute::Int(b.node().GetInt("exclusive", 0)));
  c->SetAttr("reverse", Attribute::Int(b.node().GetInt("reverse", 0) == 0 ? 1 : 0));
  b.dx = {c->output(0), nullptr};
  return Status::Ok();
}

}  // namespace

std::vector<OpDef> ReduceOps() {
  return {
      {.op_type = "ReduceSum",
       .arity = {1, 2, 1, 1},
       .infer = InferReduce,
       .precision = {OpClass::kFp32, "long sums overflow or lose precision in half"},
       .bf16_precision = {OpClass::kInfer,
                          "bfloat16 keeps FP32's exponent range, so sums may run in half"},
       .shape_inputs = {1},
       .grad = GradReduceMeanSum,
       .nondiff_inputs = {1}},
      {.op_type = "ReduceMean",
       .arity = {1, 2, 1, 1},
       .infer = InferReduce,
       .precision = {OpClass::kFp32, "long sums overflow or lose precision in half"},
       .bf16_precision = {OpClass::kInfer,
                          "bfloat16 keeps FP32's exponent range, so sums may run in half"},
       .shape_inputs = {1},
       .grad = GradReduceMeanSum,
       .nondiff_inputs = {1}},
      {.op_type = "ReduceMax",
       .arity = {1, 2, 1, 1},
       .infer = InferReduce,
       .precision = {OpClass::kClear, "exact in any precision"},
       .shape_inputs = {1},
       .grad = GradReduceOther,
       .nondiff_inputs = {1}},
      {.op_type = "ReduceMin",
       .arity = {1, 2, 1, 1},
       .infer = InferReduce,
       .precision = {OpClass::kClear, "exact in any precision"},
       .shape_inputs = {1},
       .grad = GradReduceOther,
       .nondiff_inputs = {1}},
      {.op_type = "ReduceProd",
       .arity = {1, 2, 1, 1},
       .infer = InferReduce,
       .precision = {OpClass::kFp32, "products overflow or underflow in half"},
       .shape_inputs = {1},
       .no_grad = "no gradient rule yet"},
      {.op_type = "ReduceL1",
       .arity = {1, 2, 1, 1},
       .infer = InferReduce,
       .precision = {OpClass::kFp32, "norms are long sums"},
       .shape_inputs = {1},
       .grad = GradReduceOther,
       .nondiff_inputs = {1}},
      {.op_type = "ReduceL2",
       .arity = {1, 2, 1, 1},
       .infer = InferReduce,
       .precision = {OpClass::kFp32, "norms are long sums of squares"},
       .shape_inputs = {1},
       .grad = GradReduceOther,
       .nondiff_inputs = {1}},
      {.op_type = "ReduceLogSum",
       .arity = {1, 2, 1, 1},
       .infer = InferReduce,
       .precision = {OpClass::kFp32, "log of a long sum"},
       .shape_inputs = {1},
       .grad = GradReduceOther,
       .nondiff_inputs = {1}},
      {.op_type = "ReduceLogSumExp",
       .arity = {1, 2, 1, 1},
       .infer = InferReduce,
       .precision = {OpClass::kFp32, "exp overflows in half"},
       .shape_inputs = {1},
       .grad = GradReduceOther,
       .nondiff_inputs = {1}},
      {.op_type = "ReduceSumSquare",
       .arity = {1, 2, 1, 1},
       .infer = InferReduce,
       .precision = {OpClass::kFp32, "sums of squares overflow in half"},
       .shape_inputs = {1},
       .grad = GradReduceOther,
       .nondiff_inputs = {1}},
      {.op_type = "ArgMax",
       .arity = {1, 1, 1, 1},
       .infer = InferReduce,
       .precision = {OpClass::kClear, "reads any float type"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "ArgMin",
       .arity = {1, 1, 1, 1},
       .infer = InferReduce,
       .precision = {OpClass::kClear, "reads any float type"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "TopK",
       .arity = {2, 2, 2, 2},
       .infer = InferTopK,
       .precision = {OpClass::kFp32, "rounding to half would change which elements are largest"},
       .shape_inputs = {1},
       .no_grad =
           "no gradient rule yet (its values output would scatter back through its indices)"},
      {.op_type = "CumSum",
       .arity = {2, 2, 1, 1},
       .infer = InferCumSum,
       .precision = {OpClass::kFp32, "running sums lose precision in half"},
       .shape_inputs = {1},
       .grad = GradCumSum,
       .nondiff_inputs = {1}},
  };
}

}  // namespace amp
