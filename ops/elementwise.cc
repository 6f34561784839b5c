// Elementwise ops: unary math and activations, binary arithmetic with broadcasting, comparisons,
// Where, Cast, Clip, Dropout.
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

Status InferUnaryBool(Ctx& c) {  // IsNaN, IsInf
  c.SetOutput(0, DType::kBool, c.input_shape(0));
  return Status::Ok();
}

Status InferBinary(Ctx& c) {  // Add, Sub, Mul, Div, Mod, Max, Min, Sum, Mean, And, Or, ...
  std::vector<size_t> all(c.num_inputs());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  AMP_RETURN_IF_ERROR(SameDType(c, all));
  AMP_ASSIGN_OR_RETURN(auto shape, Broadcast(c, all));
  c.SetOutput(0, c.input_dtype(0), shape);
  return Status::Ok();
}

Status InferPow(Ctx& c) {  // exponent may have another type
  AMP_ASSIGN_OR_RETURN(auto shape, Broadcast(c, {0, 1}));
  c.SetOutput(0, c.input_dtype(0), shape);
  return Status::Ok();
}

Status InferCompare(Ctx& c) {  // Equal, Less, Greater, ...
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1}));
  AMP_ASSIGN_OR_RETURN(auto shape, Broadcast(c, {0, 1}));
  c.SetOutput(0, DType::kBool, shape);
  return Status::Ok();
}

Status InferWhere(Ctx& c) {
  if (c.input_dtype(0) != DType::kBool) return c.Error("condition must be bool");
  AMP_RETURN_IF_ERROR(SameDType(c, {1, 2}));
  AMP_ASSIGN_OR_RETURN(auto shape, Broadcast(c, {0, 1, 2}));
  c.SetOutput(0, c.input_dtype(1), shape);
  return Status::Ok();
}

Status InferClip(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1, 2}));
  return InferUnary(c);
}

Status InferCast(Ctx& c) {
  int64_t to = c.node().GetInt("to", 0);
  if (!IsSupportedDType(static_cast<int32_t>(to))) return c.Error("unsupported target type ", to);
  c.SetOutput(0, static_cast<DType>(to), c.input_shape(0));
  return Status::Ok();
}

Status InferCastLike(Ctx& c) {
  c.SetOutput(0, c.input_dtype(1), c.input_shape(0));
  return Status::Ok();
}

Status InferDropout(Ctx& c) {
  AMP_RETURN_IF_ERROR(RequireRank(c, 1, 0, "ratio"));
  AMP_RETURN_IF_ERROR(RequireRank(c, 2, 0, "training_mode"));
  if (c.has_input(2) && c.input_dtype(2) != DType::kBool)
    return c.Error("training_mode must be bool, not ", DTypeName(c.input_dtype(2)));
  c.SetOutput(0, c.input_dtype(0), c.input_shape(0));
  if (c.num_outputs() > 1) c.SetOutput(1, DType::kBool, c.input_shape(0));
  return Status::Ok();
}

// ---- gradients ----

Status GradElementwise(G& b) {  // Add, Sub, Mul, Div
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

Status GradRelu(G& b) {
  Value* positive = b.Op("Greater", {b.y(0), b.Scalar(0.0, b.y(0)->dtype())});
  b.dx = {b.Op("Where", {positive, b.dy(0), b.Scalar(0.0, b.y(0)->dtype())})};
  return Status::Ok();
}

Status GradIdentity(G& b) {
  b.dx.assign(b.node().num_inputs(), nullptr);
  b.dx[0] = b.dy(0);
  return Status::Ok();
}

Status GradDropout(G& b) {
  // Ratio 0 (or inference mode) is the identity; otherwise the mask scales.
  std::optional<Tensor> ratio = ConstInput(b.node().input(1));
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

Status GradUnary(G& b) {
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
  } else if (op == "Sin") {
    g = b.Op("Mul", {dy, b.Op("Cos", {x})});
  } else if (op == "Cos") {
    g = b.Op("Neg", {b.Op("Mul", {dy, b.Op("Sin", {x})})});
  } else if (op == "Softplus") {  // log(1 + e^x)' = sigmoid(x)
    g = b.Op("Mul", {dy, b.Op("Sigmoid", {x})});
  } else if (op == "Softsign") {  // (x / (1 + |x|))' = 1 / (1 + |x|)^2
    Value* d = b.Op("Add", {b.Scalar(1.0, t), b.Op("Abs", {x})});
    g = b.Op("Div", {dy, b.Op("Mul", {d, d})});
  } else if (op == "Elu") {  // x > 0: 1; else alpha e^x = y + alpha
    float alpha = b.node().GetFloat("alpha", 1.0f);
    Value* pos = b.Op("Greater", {x, b.Scalar(0.0, t)});
    g = b.Op("Where", {pos, dy, b.Op("Mul", {dy, b.Op("Add", {y, b.Scalar(alpha, t)})})});
  } else if (op == "Selu") {  // gamma (x > 0: 1; else alpha e^x)
    float alpha = b.node().GetFloat("alpha", 1.67326319217681884765625f);
    float gamma = b.node().GetFloat("gamma", 1.05070102214813232421875f);
    Value* pos = b.Op("Greater", {x, b.Scalar(0.0, t)});
    Value* neg = b.Op("Mul", {b.Op("Exp", {x}), b.Scalar(static_cast<double>(alpha) * gamma, t)});
    g = b.Op("Mul", {dy, b.Op("Where", {pos, b.Scalar(gamma, t), neg})});
  } else if (op == "HardSigmoid" || op == "HardSwish") {
    // HardSigmoid: max(0, min(1, alpha x + beta)), slope alpha inside (0, 1);
    // HardSwish: x HardSigmoid(x) with alpha 1/6, beta 1/2, so its slope is
    // HardSigmoid(x) + x alpha inside and HardSigmoid(x) (0 or 1) outside.
    bool swish = op == "HardSwish";
    double alpha = swish ? 1.0 / 6 : b.node().GetFloat("alpha", 0.2f);
    double beta = swish ? 0.5 : b.node().GetFloat("beta", 0.5f);
    Value* lin = b.Op("Add", {b.Op("Mul", {x, b.Scalar(alpha, t)}), b.Scalar(beta, t)});
    Value* inside = b.Op(
        "And", {b.Op("Greater", {lin, b.Scalar(0.0, t)}), b.Op("Less", {lin, b.Scalar(1.0, t)})});
    Value* slope;
    if (swish) {
      Node* hard = b.Make("HardSigmoid", {x});
      hard->SetAttr("alpha", Attribute::Float(1.0f / 6));
      Value* hs = hard->output(0);
      Value* inner = b.Op("Add", {hs, b.Op("Mul", {x, b.Scalar(alpha, t)})});
      slope = b.Op("Where", {inside, inner, hs});
    } else {
      slope = b.Op("Where", {inside, b.Scalar(alpha, t), b.Scalar(0.0, t)});
    }
    g = b.Op("Mul", {dy, slope});
  } else if (op == "Mish") {
    // x tanh(softplus(x)): tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2)
    Value* th = b.Op("Tanh", {b.Op("Softplus", {x})});
    Value* sech2 = b.Op("Sub", {b.Scalar(1.0, t), b.Op("Mul", {th, th})});
    g = b.Op("Mul",
             {dy, b.Op("Add", {th, b.Op("Mul", {b.Op("Mul", {x, b.Op("Sigmoid", {x})}), sech2})})});
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

// Clip passes the gradient where min <= x <= max (PyTorch's clamp), bounds
// included; min and max are inputs (opset 11+) or attributes, each optional.
Status GradClip(G& b) {
  Value* x = b.x(0);
  DType t = x->dtype();
  const Node& n = b.node();
  Value* lo = n.num_inputs() > 1 ? n.input(1) : nullptr;
  Value* hi = n.num_inputs() > 2 ? n.input(2) : nullptr;
  if (!lo && n.HasAttr("min")) lo = b.Scalar(n.GetFloat("min", 0), t);
  if (!hi && n.HasAttr("max")) hi = b.Scalar(n.GetFloat("max", 0), t);
  Value* keep = nullptr;
  if (lo) keep = b.Op("Not", {b.Op("Less", {x, lo})});
  if (hi) {
    Value* below = b.Op("Not", {b.Op("Greater", {x, hi})});
    keep = keep ? b.Op("And", {keep, below}) : below;
  }
  b.dx.assign(n.num_inputs(), nullptr);
  b.dx[0] = keep ? b.Op("Where", {keep, b.dy(0), b.Scalar(0.0, t)}) : b.dy(0);
  return Status::Ok();
}

// Max/Min of two tensors (torch.maximum/minimum): the gradient goes to the
// input that won, half to each on a tie (PyTorch's rule), summed back over
// broadcast axes. One input is the identity.
Status GradMaxMin(G& b) {
  const Node& n = b.node();
  b.dx.assign(n.num_inputs(), nullptr);
  if (n.num_inputs() == 1) {
    b.dx[0] = b.dy(0);
    return Status::Ok();
  }
  if (n.num_inputs() != 2)
    return Unimplemented(n.Describe(), ": the gradient of ", n.op_type(),
                         " supports two inputs (this one has ", n.num_inputs(), ")");
  DType t = b.y(0)->dtype();
  const Shape& out = ShapeOrDie(b.y(0));
  const char* wins = n.op_type() == "Max" ? "Greater" : "Less";
  Value* half = b.Op("Mul", {b.dy(0), b.Scalar(0.5, t)});
  Value* tie = b.Op("Equal", {b.x(0), b.x(1)});
  for (size_t i = 0; i < 2; ++i) {
    if (!b.wants(i)) continue;
    Value* won = b.Op(wins, {b.x(i), b.x(1 - i)});
    Value* g = b.Op("Where", {won, b.dy(0), b.Op("Where", {tie, half, b.Scalar(0.0, t)})});
    AMP_ASSIGN_OR_RETURN(b.dx[i], b.ReduceTo(g, out, b.x(i)));
  }
  return Status::Ok();
}

// PRelu: y = x where x > 0, slope * x elsewhere (slope broadcasts).
Status GradPRelu(G& b) {
  const Shape& out = ShapeOrDie(b.y(0));
  Value* zero = b.Scalar(0.0, b.y(0)->dtype());
  Value* pos = b.Op("Greater", {b.x(0), zero});
  b.dx.assign(2, nullptr);
  if (b.wants(0)) {
    Value* g = b.Op("Where", {pos, b.dy(0), b.Op("Mul", {b.dy(0), b.x(1)})});
    AMP_ASSIGN_OR_RETURN(b.dx[0], b.ReduceTo(g, out, b.x(0)));
  }
  if (b.wants(1)) {
    Value* g = b.Op("Where", {pos, zero, b.Op("Mul", {b.dy(0), b.x(0)})});
    AMP_ASSIGN_OR_RETURN(b.dx[1], b.ReduceTo(g, out, b.x(1)));
  }
  return Status::Ok();
}

Status GradPow(G& b) {
  std::optional<Tensor> c = ConstInput(b.x(1));
  if (!c || c->num_elements() != 1)
    return Unimplemented(b.node().Describe(),
                         ": the gradient of Pow needs a constant scalar exponent");
  double p = c->GetDouble(0);
  DType t = b.x(0)->dtype();
  Value* pm1 = b.Op("Pow", {b.x(0), b.Scalar(p - 1.0, t)});
  b.dx = {b.Op("Mul", {b.dy(0), b.Op("Mul", {pm1, b.Scalar(p, t)})}), nullptr};
  return Status::Ok();
}

Status GradWhere(G& b) {
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

Status GradCast(G& b) {
  Node* c = b.Make("Cast", {b.dy(0)});
  c->SetAttr("to", Attribute::Int(static_cast<int64_t>(b.x(0)->dtype())));
  b.dx = {c->output(0)};
  return Status::Ok();
}

}  // namespace

std::vector<OpDef> ElementwiseOps() {
  return {
      {.op_type = "Abs",
       .arity = {1, 1, 1, 1},
       .infer = InferUnary,
       .precision = {OpClass::kInfer, "elementwise: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Ceil",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "elementwise: half between half ops"},
       .no_grad = "piecewise constant: zero gradient almost everywhere; amp has no rule"},
      {.op_type = "Cos",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "bounded: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Elu",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "activation: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Erf",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "bounded activation: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Exp",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kFp32, "exp overflows half above 11"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Floor",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "elementwise: half between half ops"},
       .no_grad = "piecewise constant: zero gradient almost everywhere; amp has no rule"},
      {.op_type = "Gelu",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "activation: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "HardSigmoid",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "activation: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "HardSwish",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "activation: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Identity",
       .arity = {1, 1, 1, 1},
       .infer = InferUnary,
       .precision = {OpClass::kClear, "data movement"},
       .grad = GradIdentity},
      {.op_type = "IsInf",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryBool,
       .precision = {OpClass::kClear, "reads any float type"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "IsNaN",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryBool,
       .precision = {OpClass::kClear, "reads any float type"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "LeakyRelu",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "activation: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Log",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kFp32, "log of small half values underflows"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Mish",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "activation: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Neg",
       .arity = {1, 1, 1, 1},
       .infer = InferUnary,
       .precision = {OpClass::kInfer, "elementwise: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Not",
       .arity = {1, 1, 1, 1},
       .infer = InferUnary,
       .precision = {OpClass::kNone, "boolean data"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "Reciprocal",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kFp32, "1/x overflows half for |x| < 2^-16"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Relu",
       .arity = {1, 1, 1, 1},
       .infer = InferUnary,
       .precision = {OpClass::kClear, "exact in any precision"},
       .grad = GradRelu},
      {.op_type = "Round",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "elementwise: half between half ops"},
       .no_grad = "piecewise constant: zero gradient almost everywhere; amp has no rule"},
      {.op_type = "Selu",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "activation: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Sigmoid",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "bounded activation: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Sign",
       .arity = {1, 1, 1, 1},
       .infer = InferUnary,
       .precision = {OpClass::kInfer, "elementwise: half between half ops"},
       .no_grad = "piecewise constant: zero gradient almost everywhere; amp has no rule"},
      {.op_type = "Sin",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "bounded: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Softplus",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kFp32, "exp inside overflows in half"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Softsign",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "activation: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Sqrt",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kFp32, "feeds normalizations; small inputs underflow in half"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Tanh",
       .arity = {1, 1, 1, 1},
       .infer = InferUnaryFloat,
       .precision = {OpClass::kInfer, "bounded activation: half between half ops"},
       .grad = GradUnary,
       .grad_reads_shapes = false},
      {.op_type = "Cast",
       .arity = {1, 1, 1, 1},
       .infer = InferCast,
       .precision = {OpClass::kNone, "the user's own conversion"},
       .grad = GradCast},
      {.op_type = "CastLike",
       .arity = {2, 2, 1, 1},
       .infer = InferCastLike,
       .precision = {OpClass::kNone, "the user's own conversion"},
       // Never reaches autodiff: the loader turns it into Cast
       // (compiler/legalize.h).
       .no_grad = "becomes Cast at import"},
      {.op_type = "Clip",
       .arity = {1, 3, 1, 1},
       .infer = InferClip,
       .precision = {OpClass::kInfer, "elementwise: half between half ops"},
       .grad = GradClip},
      {.op_type = "Dropout",
       .arity = {1, 3, 1, 2},
       .infer = InferDropout,
       .precision = {OpClass::kClear, "masks and scales by a constant"},
       .shape_inputs = {1, 2},
       .grad = GradDropout,
       .nondiff_inputs = {1, 2}},
      {.op_type = "Add",
       .arity = {2, 2, 1, 1},
       .infer = InferBinary,
       .precision = {OpClass::kInfer, "elementwise: half between half ops"},
       .grad = GradElementwise},
      {.op_type = "Sub",
       .arity = {2, 2, 1, 1},
       .infer = InferBinary,
       .precision = {OpClass::kInfer, "elementwise: half between half ops"},
       .grad = GradElementwise},
      {.op_type = "Mul",
       .arity = {2, 2, 1, 1},
       .infer = InferBinary,
       .precision = {OpClass::kInfer, "elementwise: half between half ops"},
       .grad = GradElementwise},
      {.op_type = "Div",
       .arity = {2, 2, 1, 1},
       .infer = InferBinary,
       .precision = {OpClass::kInfer, "elementwise: half between half ops"},
       .grad = GradElementwise},
      {.op_type = "Mod",
       .arity = {2, 2, 1, 1},
       .infer = InferBinary,
       .precision = {OpClass::kFp32, "remainders of rounded values differ"},
       .no_grad = "no gradient rule yet"},
      {.op_type = "Pow",
       .arity = {2, 2, 1, 1},
       .infer = InferPow,
       .precision = {OpClass::kFp32, "powers overflow or underflow in half"},
       .grad = GradPow,
       .nondiff_inputs = {1}},
      {.op_type = "PRelu",
       .arity = {2, 2, 1, 1},
       .infer = InferBinary,
       .precision = {OpClass::kInfer, "elementwise: half between half ops"},
       .grad = GradPRelu},
      {.op_type = "And",
       .arity = {2, 2, 1, 1},
       .infer = InferBinary,
       .precision = {OpClass::kNone, "boolean data"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "Or",
       .arity = {2, 2, 1, 1},
       .infer = InferBinary,
       .precision = {OpClass::kNone, "boolean data"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "Xor",
       .arity = {2, 2, 1, 1},
       .infer = InferBinary,
       .precision = {OpClass::kNone, "boolean data"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "Max",
       .arity = {1, -1, 1, 1},
       .infer = InferBinary,
       .precision = {OpClass::kClear, "exact in any precision"},
       .grad = GradMaxMin},
      {.op_type = "Min",
       .arity = {1, -1, 1, 1},
       .infer = InferBinary,
       .precision = {OpClass::kClear, "exact in any precision"},
       .grad = GradMaxMin},
      {.op_type = "Sum",
       .arity = {1, -1, 1, 1},
       .infer = InferBinary,
       .precision = {OpClass::kInfer, "elementwise: half between half ops"},
       .no_grad = "no gradient rule yet"},
      {.op_type = "Mean",
       .arity = {1, -1, 1, 1},
       .infer = InferBinary,
       .precision = {OpClass::kInfer, "elementwise: half between half ops"},
       .no_grad = "no gradient rule yet"},
      {.op_type = "Equal",
       .arity = {2, 2, 1, 1},
       .infer = InferCompare,
       .precision = {OpClass::kClear, "compares its inputs"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "Greater",
       .arity = {2, 2, 1, 1},
       .infer = InferCompare,
       .precision = {OpClass::kClear, "compares its inputs"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "GreaterOrEqual",
       .arity = {2, 2, 1, 1},
       .infer = InferCompare,
       .precision = {OpClass::kClear, "compares its inputs"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "Less",
       .arity = {2, 2, 1, 1},
       .infer = InferCompare,
       .precision = {OpClass::kClear, "compares its inputs"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "LessOrEqual",
       .arity = {2, 2, 1, 1},
       .infer = InferCompare,
       .precision = {OpClass::kClear, "compares its inputs"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "Where",
       .arity = {3, 3, 1, 1},
       .infer = InferWhere,
       .precision = {OpClass::kClear, "selects between its inputs"},
       .grad = GradWhere,
       .nondiff_inputs = {0}},
  };
}

}  // namespace amp
