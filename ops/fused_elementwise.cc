// ai.amp FusedElementwise: its program (ops/fused_elementwise.h) and its
// record (type and shape inference, in-place pairs); and ai.amp MultiCast
// (batch-casts), many Casts in one multi-tensor kernel.
#include "ops/fused_elementwise.h"

#include <algorithm>

#include "ops/families.h"
#include "ops/infer_util.h"

namespace amp {
namespace {

void LeakyReluParams(const Node& n, float p[2]) { p[0] = n.GetFloat("alpha", 0.01f); }
void EluParams(const Node& n, float p[2]) { p[0] = n.GetFloat("alpha", 1.0f); }
void SeluParams(const Node& n, float p[2]) {
  p[0] = n.GetFloat("alpha", 1.67326319217681884765625f);
  p[1] = n.GetFloat("gamma", 1.05070102214813232421875f);
}
void HardSigmoidParams(const Node& n, float p[2]) {
  p[0] = n.GetFloat("alpha", 0.2f);
  p[1] = n.GetFloat("beta", 0.5f);
}
void IsInfParams(const Node& n, float p[2]) {
  p[0] = n.GetInt("detect_positive", 1) != 0 ? 1.f : 0.f;
  p[1] = n.GetInt("detect_negative", 1) != 0 ? 1.f : 0.f;
}
void GeluParams(const Node& n, float p[2]) {
  p[0] = n.GetString("approximate", "none") == "tanh" ? 1.f : 0.f;
}

Status InferFusedElementwise(InferenceContext& ctx) {
  auto attr = [&](std::string_view name) { return ctx.node().FindAttr(std::string(name)); };
  auto decoded = DecodeFusedProgram(attr, static_cast<int>(ctx.num_inputs()),
                                    static_cast<int>(ctx.num_outputs()));
  if (!decoded.ok()) return decoded.status().WithContext(ctx.node().Describe());
  const FusedProgram& p = *decoded;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) return ctx.Error("input ", i, " is missing");
    if (!FusableType(ctx.input_dtype(i)))
      return ctx.Error("input ", i, " is ", DTypeName(ctx.input_dtype(i)),
                       "; a fused program holds float32, float16, bfloat16 and bool");
  }
  // Made at specialization, where every shape is static: the inputs'
  // numpy broadcast.
  std::vector<int64_t> out;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    auto dims = ctx.input_shape(i) ? StaticDims(*ctx.input_shape(i)) : std::nullopt;
    if (!dims) return ctx.Error("input ", i, " has no static shape");
    if (dims->size() > out.size()) out.insert(out.begin(), dims->size() - out.size(), 1);
    size_t off = out.size() - dims->size();
    for (size_t k = 0; k < dims->size(); ++k) {
      int64_t& o = out[off + k];
      int64_t d = (*dims)[k];
      if (d != o && d != 1 && o != 1)
        return ctx.Error("input ", i, " does not broadcast to the others (dim ", off + k, ": ", d,
                         " and ", o, ")");
      if (o == 1) o = d;
    }
  }
  for (size_t k = 0; k < ctx.num_outputs(); ++k) {
    int reg = p.results[k];
    DType t = reg < p.num_inputs ? ctx.input_dtype(reg) : p.instrs[reg - p.num_inputs].type;
    ctx.SetOutput(k, t, ShapeFromDims(out));
  }
  return Status::Ok();
}

// Element i of every input is read before element i of any output is
// written: an output may take the bytes of an input of its type and shape.
std::vector<std::pair<int, int>> InplaceFusedElementwise(const Node& n) {
  std::vector<std::pair<int, int>> pairs;
  for (size_t o = 0; o < n.num_outputs(); ++o)
    for (size_t i = 0; i < n.num_inputs(); ++i) {
      const Value* in = n.input(i);
      const Value* out = n.output(o);
      auto in_dims = in && in->type().shape ? StaticDims(*in->type().shape) : std::nullopt;
      auto out_dims = out->type().shape ? StaticDims(*out->type().shape) : std::nullopt;
      if (in && in->dtype() == out->dtype() && in_dims && out_dims && *in_dims == *out_dims)
        pairs.emplace_back(static_cast<int>(o), static_cast<int>(i));
    }
  return pairs;
}

// ai.amp MultiCast: n float tensors in, each cast to `to` out.
Status InferMultiCast(InferenceContext& ctx) {
  if (ctx.num_outputs() != ctx.num_inputs()) return ctx.Error("expects one output per input");
  auto to = static_cast<DType>(ctx.node().GetInt("to", 0));
  if (!IsFloat(to)) return ctx.Error("casts to float types, not ", DTypeName(to));
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i) || !IsFloat(ctx.input_dtype(i)))
      return ctx.Error("input ", i, " is not a float tensor");
    ctx.SetOutput(i, to, ctx.input_shape(i));
  }
  return Status::Ok();
}

}  // namespace

bool FusableType(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16 || t == DType::kBool;
}

const std::vector<FusableOp>& FusableOps() {
  static const std::vector<FusableOp> ops = {
      // unary
      {"Identity"},
      {"Cast"},
      {"Abs"},
      {"Neg"},
      {"Sign"},
      {"Relu"},
      {"Ceil"},
      {"Floor"},
      {"Sqrt"},
      {"Reciprocal"},
      {"Exp"},
      {"Log"},
      {"Erf"},
      {"Tanh"},
      {"Sigmoid"},
      {"Sin"},
      {"Cos"},
      {"Softplus"},
      {"Softsign"},
      {"Mish"},
      {"HardSwish"},
      {"LeakyRelu", 1, 1, LeakyReluParams},
      {"Elu", 1, 1, EluParams},
      {"Selu", 1, 1, SeluParams},
      {"HardSigmoid", 1, 1, HardSigmoidParams},
      {"Gelu", 1, 1, GeluParams},
      {"IsNaN"},
      {"IsInf", 1, 1, IsInfParams},
      {"Not"},
      // binary
      {"Add", 2, 2},
      {"Sub", 2, 2},
      {"Mul", 2, 2},
      {"Div", 2, 2},
      {"Pow", 2, 2},
      {"PRelu", 2, 2},
      {"Max", 2, 2},
      {"Min", 2, 2},
      {"Equal", 2, 2},
      {"Greater", 2, 2},
      {"GreaterOrEqual", 2, 2},
      {"Less", 2, 2},
      {"LessOrEqual", 2, 2},
      {"And", 2, 2},
      {"Or", 2, 2},
      {"Xor", 2, 2},
      // more
      {"Sum", 2, 3},
      {"Where", 3, 3},
  };
  return ops;
}

const FusableOp* FindFusableOp(std::string_view op) {
  for (const FusableOp& f : FusableOps())
    if (f.op == op) return &f;
  return nullptr;
}

StatusOr<FusedProgram> DecodeFusedProgram(
    const std::function<const Attribute*(std::string_view)>& attr, int num_inputs,
    int num_outputs) {
  auto get = [&](std::string_view name, Attribute::Kind kind) -> StatusOr<const Attribute*> {
    const Attribute* a = attr(name);
    if (!a || a->kind != kind)
      return InvalidArgument("FusedElementwise needs attribute '", name, "' of type ",
                             kind == Attribute::Kind::kStrings ? "strings"
                             : kind == Attribute::Kind::kInts  ? "ints"
                                                               : "floats");
    return a;
  };
  AMP_ASSIGN_OR_RETURN(const Attribute* ops, get("ops", Attribute::Kind::kStrings));
  AMP_ASSIGN_OR_RETURN(const Attribute* args, get("args", Attribute::Kind::kInts));
  AMP_ASSIGN_OR_RETURN(const Attribute* types, get("types", Attribute::Kind::kInts));
  AMP_ASSIGN_OR_RETURN(const Attribute* params, get("params", Attribute::Kind::kFloats));
  AMP_ASSIGN_OR_RETURN(const Attribute* results, get("results", Attribute::Kind::kInts));
  FusedProgram p;
  p.num_inputs = num_inputs;
  size_t n = ops->strings.size();
  if (num_inputs < 1 || num_inputs > FusedProgram::kMaxInputs)
    return InvalidArgument("FusedElementwise has ", num_inputs, " inputs; it takes 1 to ",
                           FusedProgram::kMaxInputs);
  if (n < 1 || n > static_cast<size_t>(FusedProgram::kMaxInstrs))
    return InvalidArgument("FusedElementwise has ", n, " instructions; it takes 1 to ",
                           FusedProgram::kMaxInstrs);
  if (args->ints.size() != 3 * n || types->ints.size() != n || params->floats.size() != 2 * n)
    return InvalidArgument("FusedElementwise: ", n, " ops need ", 3 * n, " args, ", n,
                           " types and ", 2 * n, " params; found ", args->ints.size(), ", ",
                           types->ints.size(), " and ", params->floats.size());
  for (size_t k = 0; k < n; ++k) {
    FusedInstr in;
    in.op = ops->strings[k];
    const FusableOp* f = FindFusableOp(in.op);
    if (!f) return InvalidArgument("FusedElementwise: op '", in.op, "' cannot be fused");
    int64_t t = types->ints[k];
    in.type = static_cast<DType>(t);
    if (t < 0 || t > 16 || !FusableType(in.type))
      return InvalidArgument("FusedElementwise: instruction ", k, " (", in.op, ") has type ", t,
                             "; a program holds float32, float16, bfloat16 and bool");
    int arity = 0;
    for (int j = 0; j < 3; ++j) {
      int64_t r = args->ints[3 * k + j];
      if (r < -1 || r >= num_inputs + static_cast<int64_t>(k))
        return InvalidArgument("FusedElementwise: instruction ", k, " (", in.op,
                               ") reads register ", r, ", which is not written before it");
      if (r >= 0 && arity != j)
        return InvalidArgument("FusedElementwise: instruction ", k, " (", in.op,
                               ") skips an argument");
      if (r >= 0) ++arity;
      in.args[j] = static_cast<int>(r);
    }
    if (arity < f->min_args || arity > f->max_args)
      return InvalidArgument(
          "FusedElementwise: instruction ", k, " (", in.op, ") has ", arity, " arguments; ", in.op,
          " takes ", f->min_args,
          f->max_args != f->min_args ? " to " + std::to_string(f->max_args) : "");
    in.params[0] = params->floats[2 * k];
    in.params[1] = params->floats[2 * k + 1];
    p.instrs.push_back(std::move(in));
  }
  if (results->ints.size() != static_cast<size_t>(num_outputs))
    return InvalidArgument("FusedElementwise has ", num_outputs, " outputs but ",
                           results->ints.size(), " results");
  for (int64_t r : results->ints) {
    if (r < num_inputs || r >= p.num_registers())
      return InvalidArgument("FusedElementwise: result register ", r,
                             " is not an instruction's result");
    p.results.push_back(static_cast<int>(r));
  }
  return p;
}

void EncodeFusedProgram(const FusedProgram& p, Node& n) {
  Attribute ops;
  ops.kind = Attribute::Kind::kStrings;
  std::vector<int64_t> args, types, results(p.results.begin(), p.results.end());
  std::vector<float> params;
  for (const FusedInstr& in : p.instrs) {
    ops.strings.push_back(in.op);
    for (int r : in.args) args.push_back(r);
    types.push_back(static_cast<int64_t>(in.type));
    params.push_back(in.params[0]);
    params.push_back(in.params[1]);
  }
  n.SetAttr("ops", std::move(ops));
  n.SetAttr("args", Attribute::Ints(std::move(args)));
  n.SetAttr("types", Attribute::Ints(std::move(types)));
  n.SetAttr("params", Attribute::Floats(std::move(params)));
  n.SetAttr("results", Attribute::Ints(std::move(results)));
}

std::vector<OpDef> FusedOps() {
  return {
      {.domain = "ai.amp",
       .op_type = "FusedElementwise",
       .arity = {1, FusedProgram::kMaxInputs, 1, FusedProgram::kMaxInstrs},
       .infer = InferFusedElementwise,
       .precision = {OpClass::kNone, "made by fusion at specialization, after precision"},
       .no_grad = "made by fusion at specialization: never differentiated",
       .inplace = InplaceFusedElementwise},
      {.domain = "ai.amp",
       .op_type = "MultiCast",
       .arity = {1, -1, 1, -1},
       .infer = InferMultiCast,
       .precision = {OpClass::kNone, "made by batch-casts at specialization, after precision"},
       .no_grad = "made by batch-casts at specialization: never differentiated"},
  };
}

}  // namespace amp
