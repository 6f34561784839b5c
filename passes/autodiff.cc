#include "passes/autodiff.h"

#include <regex>
#include <unordered_map>
#include <unordered_set>

#include "compiler/shape_inference.h"
#include "ops/grad_builder.h"
#include "ops/op_def.h"

namespace amp {
namespace {

// Input i of `n` never gets a gradient (its record says so).
bool IsNonDifferentiable(const Node& n, size_t i) {
  const OpDef* def = FindOp(n.domain(), n.op_type());
  return def && def->IsNonDifferentiableInput(static_cast<int>(i));
}

}  // namespace

StatusOr<std::vector<Value*>> BuildGradients(Model& model, Value* y, Value* seed,
                                             const std::vector<Value*>& wrt) {
  Graph& g = *model.graph;
  const std::vector<Value*>& params = wrt;
  // Values that depend on a parameter (forward) ...
  std::unordered_set<const Value*> depends(params.begin(), params.end());
  std::vector<Node*> order = g.nodes();
  for (Node* n : order) {
    bool any = false;
    for (size_t i = 0; i < n->num_inputs(); ++i)
      any |= n->input(i) && depends.count(n->input(i)) && !IsNonDifferentiable(*n, i);
    if (any)
      for (Value* out : n->outputs())
        if (IsFloat(out->dtype())) depends.insert(out);
  }
  if (!depends.count(y)) return std::vector<Value*>(wrt.size(), nullptr);

  // ... and the reverse sweep from the loss.
  std::unordered_map<const Value*, std::vector<Value*>> contributions;
  contributions[y].push_back(seed);

  // Gathers of one constant position along axis 0 (how exporters split a
  // packed QKV projection) are collected per source: when they cover every
  // position once and nothing else contributes, the source's gradient is the
  // Concat of their output gradients, instead of one zero-filled ScatterND
  // per Gather summed.
  struct GatherPart {
    int64_t index;
    Value* dy;
    Node* node;
  };
  std::unordered_map<const Value*, std::vector<GatherPart>> gather_parts;
  auto scalar_gather = [&](const Node& n, int64_t* index) {
    if (n.op_type() != "Gather" || !n.domain().empty() || n.GetInt("axis", 0) != 0) return false;
    // A Constant node only: an initializer index could be rebound later,
    // and the Concat fixes each part's position now.
    const Node* c = ProducerIf(n.input(1), "Constant");
    std::optional<Tensor> idx = c ? ConstInput(n.input(1)) : std::nullopt;
    const auto& xs = n.input(0)->type().shape;
    if (!idx || !idx->dims().empty() || !IsInteger(idx->dtype()) || !xs || xs->empty() ||
        !(*xs)[0].is_static())
      return false;
    int64_t d0 = (*xs)[0].value(), i = idx->GetInt(0);
    if (i < 0) i += d0;
    if (i < 0 || i >= d0) return false;
    *index = i;
    return true;
  };
  // The parts of `v` as a Concat when they cover it exactly, else through
  // Gather's own rule; either way they become contributions.
  auto settle_parts = [&](const Value* v) -> Status {
    auto it = gather_parts.find(v);
    if (it == gather_parts.end() || it->second.empty()) return Status::Ok();
    std::vector<GatherPart> parts = std::move(it->second);
    gather_parts.erase(it);
    int64_t d0 = (*v->type().shape)[0].value();
    std::vector<Value*> by_index(static_cast<size_t>(d0), nullptr);
    bool exact = contributions[v].empty() && static_cast<int64_t>(parts.size()) == d0;
    for (const GatherPart& p : parts) {
      if (by_index[p.index]) exact = false;
      by_index[p.index] = p.dy;
    }
    if (exact) {
      Value* axis0 = g.AddConstant(v->name() + "_grad_axis",
                                   Tensor::FromVector<int64_t>(DType::kInt64, {1}, {0}));
      std::vector<Value*> pieces;
      for (Value* dy : by_index)
        pieces.push_back(
            g.AddNode("Unsqueeze", {dy, axis0}, {v->name() + "_grad_part"})->output(0));
      Node* cat = g.AddNode("Concat", pieces, {v->name() + "_grad_concat"});
      cat->SetAttr("axis", Attribute::Int(0));
      contributions[v].push_back(cat->output(0));
      return Status::Ok();
    }
    const OpDef* gather = FindOp("", "Gather");
    for (const GatherPart& p : parts) {
      GradBuilder b(model, *p.node, {p.dy}, {true, false});
      AMP_RETURN_IF_ERROR(gather->grad(b));
      contributions[v].push_back(b.dx[0]);
    }
    return Status::Ok();
  };

  Status deferred = Status::Ok();  // a failure inside total(), reported after the sweep
  auto total = [&](const Value* v) -> Value* {
    if (Status st = settle_parts(v); !st.ok()) {
      if (deferred.ok()) deferred = st;
      return nullptr;
    }
    auto it = contributions.find(v);
    if (it == contributions.end() || it->second.empty()) return nullptr;
    if (it->second.size() == 1) return it->second[0];
    Node* sum = g.AddNode("Sum", it->second, {v->name() + "_grad_sum"});
    it->second = {sum->output(0)};
    return sum->output(0);
  };

  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    std::vector<Value*> gy;
    bool any_grad = false;
    for (Value* out : n->outputs()) {
      gy.push_back(depends.count(out) ? total(out) : nullptr);
      any_grad |= gy.back() != nullptr;
    }
    AMP_RETURN_IF_ERROR(deferred);
    if (!any_grad) continue;
    std::vector<bool> wanted;
    bool any_wanted = false;
    for (size_t i = 0; i < n->num_inputs(); ++i) {
      bool w = n->input(i) && depends.count(n->input(i)) && !IsNonDifferentiable(*n, i);
      wanted.push_back(w);
      any_wanted |= w;
    }
    if (!any_wanted) continue;
    if (int64_t index = 0; wanted[0] && scalar_gather(*n, &index)) {
      gather_parts[n->input(0)].push_back({index, gy[0], n});
      continue;
    }
    const OpDef* def = FindOp(n->domain(), n->op_type());
    GradFn rule = def ? def->grad : nullptr;
    if (!rule)
      return Unimplemented(n->Describe(),
                           " is on the path from a trainable parameter to the loss, but amp has no "
                           "gradient for ",
                           n->op_type(), " (", def && def->no_grad ? def->no_grad : "an unknown op",
                           "; freeze the parameters before it with --freeze, or file an issue)");
    // Rules read ranks and dims; an unknown rank is a clear error, never an
    // out-of-bounds read.
    if (def->grad_reads_shapes)
      for (const std::vector<Value*>* values : {&n->inputs(), &n->outputs()})
        for (const Value* v : *values)
          if (v && !v->type().shape)
            return InvalidArgument(
                n->Describe(), ": the gradient needs the rank of '", v->name(),
                "', which is unknown; give the model's inputs shapes (re-export ",
                "with example inputs, or set them with onnx's make_tensor_value_",
                "info) so that amp can infer it");
    GradBuilder b(model, *n, gy, wanted);
    AMP_RETURN_IF_ERROR(rule(b));
    for (size_t i = 0; i < n->num_inputs(); ++i)
      if (wanted[i] && i < b.dx.size() && b.dx[i]) contributions[n->input(i)].push_back(b.dx[i]);
  }
  std::vector<Value*> out;
  for (Value* p : wrt) out.push_back(total(p));
  AMP_RETURN_IF_ERROR(deferred);
  return out;
}

StatusOr<bool> Autodiff::Run(Model& model) {
  Graph& g = *model.graph;
  TrainingInfo& t = model.training;
  if (!t.active()) return InvalidArgument("autodiff needs a loss: run attach-loss first (--loss)");
  if (!t.gradients.empty() || t.has_optimizer) return false;  // already differentiated
  Value* loss = g.FindValue(t.loss);
  if (!loss->type().shape || !loss->type().shape->empty())
    return InvalidArgument("the loss '", loss->name(), "' must be a scalar, not ",
                           loss->type().ToString());

  // --freeze and --trainable: valid, and each matching some float
  // initializer (a typo would otherwise train everything, or nothing).
  auto compile = [&](const std::string& flag,
                     const std::string& source) -> StatusOr<std::optional<std::regex>> {
    if (source.empty()) return std::optional<std::regex>();
    std::optional<std::regex> re;
    try {
      re.emplace(source, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return InvalidArgument(flag, " '", source, "' is not a valid regular expression: ", e.what());
    }
    std::string some;
    int listed = 0;
    for (const Value* v : g.initializers()) {
      if (!IsFloat(v->dtype())) continue;
      if (std::regex_search(v->name(), *re)) return re;
      if (listed++ < 6) some += StrCat(listed > 1 ? ", " : "", v->name());
    }
    return InvalidArgument(flag, " '", source, "' matches no parameter (the model's float ",
                           "initializers: ", some, listed > 6 ? ", ..." : "", ")");
  };
  AMP_ASSIGN_OR_RETURN(std::optional<std::regex> freeze, compile("--freeze", freeze_));
  AMP_ASSIGN_OR_RETURN(std::optional<std::regex> only, compile("--trainable", trainable_));
  // What is trained is what PyTorch trains: every float initializer that a
  // parameter could be, except BatchNorm's running statistics (state) and
  // the constants exporters store as initializers, which no
  // named_parameters() entry is ever called: dynamo's lifted constants
  // (val_12, _tensor_constant0) and TorchScript's folded ones (onnx::Mul_7,
  // /block/Constant_output_0).
  // The dynamo exporter also names its buffers and lifted constants in the
  // graph signature (Model::exporter_non_parameters).
  auto exporter_constant = [&](const std::string& name) {
    return IsExporterConstantName(name) || model.exporter_non_parameters.count(name) != 0;
  };
  // Running statistics are state, not parameters.
  std::unordered_set<const Value*> statistics;
  for (Node* n : g.nodes())
    if (n->op_type() == "BatchNormalization")
      for (size_t i = 3; i < n->num_inputs(); ++i) statistics.insert(n->input(i));
  std::vector<Value*> params;
  for (Value* v : g.initializers())
    if ((v->dtype() == DType::kFloat32 || v->dtype() == DType::kFloat64) && !statistics.count(v) &&
        !exporter_constant(v->name()) && !v->uses().empty() &&
        !(freeze && std::regex_search(v->name(), *freeze)) &&
        !(only && !std::regex_search(v->name(), *only)))
      params.push_back(v);

  Tensor one(loss->dtype(), {});
  one.SetDouble(0, 1.0);
  Node* seed = g.AddNode("Constant", {}, {loss->name() + "_grad"});
  seed->SetAttr("value", Attribute::FromTensor(one));
  t.grad_seed = seed->output(0)->name();
  AMP_ASSIGN_OR_RETURN(std::vector<Value*> grads,
                       BuildGradients(model, loss, seed->output(0), params));
  bool any = false;
  for (Value* gr : grads) any |= gr != nullptr;
  if (!any) return InvalidArgument("the loss does not depend on any trainable parameter");
  // Each gradient becomes a graph output named <param>_grad (the optimizer
  // replaces these outputs by the updated state).
  t.trainable.clear();
  for (size_t i = 0; i < params.size(); ++i) {
    Value* p = params[i];
    Value* grad = grads[i];
    if (!grad) continue;  // does not reach the loss (PyTorch leaves .grad None)
    Node* id = g.AddNode("Identity", {grad}, {p->name() + "_grad"});
    g.AddOutput(id->output(0));
    t.trainable.push_back(p->name());
    t.gradients[p->name()] = id->output(0)->name();
  }
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
