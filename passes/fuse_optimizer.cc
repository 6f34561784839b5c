#include "passes/fuse_optimizer.h"

#include <map>

#include "compiler/shape_inference.h"

namespace amp {
namespace {

// The FP32 value of gradient `grad`: itself, or the Cast to FP32 that
// insert-casts made for the optimizer when the gradient is computed in half.
StatusOr<Value*> Fp32Gradient(Value* grad, const std::string& param) {
  if (grad->dtype() == DType::kFloat32) return grad;
  for (const Use& u : grad->uses())
    if (u.node->op_type() == "Cast" && u.node->domain().empty() &&
        u.node->GetInt("to", 0) == static_cast<int64_t>(DType::kFloat32))
      return u.node->output(0);
  return Internal("the optimizer's gradient of '", param, "' ('", grad->name(), "') is ",
                  DTypeName(grad->dtype()), " and nothing casts it to float32");
}

}  // namespace

StatusOr<bool> FuseOptimizer::Run(Model& model) {
  Graph& g = *model.graph;
  TrainingInfo& t = model.training;
  const OptimizerInfo& o = t.optimizer;
  if (!t.active() || o.kind == OptimizerKind::kNone) return false;
  bool adamw = o.kind == OptimizerKind::kAdamW;
  bool sgd = o.kind == OptimizerKind::kSgd;
  bool momentum = sgd && o.momentum != 0;
  Value* lr = g.FindValue(o.lr);
  Value* step = t.optimizer_step.empty() ? nullptr : g.FindValue(t.optimizer_step);
  Value* skip = t.skip_step.empty() ? nullptr : g.FindValue(t.skip_step);
  if (!lr || !lr->is_graph_input() || !step)
    return Internal("the optimizer's description names lr '", o.lr, "' and step '",
                    t.optimizer_step, "', which the step does not have as an input and state");
  std::map<std::string, std::string> update_of(t.updates.begin(), t.updates.end());
  if (!o.params.empty()) {  // fused already: the update is a FusedAdam output
    const Value* u = g.FindValue(update_of[o.params[0].param]);
    if (u && u->producer() &&
        (u->producer()->op_type() == "FusedAdam" || u->producer()->op_type() == "FusedSgd"))
      return false;
  }
  struct Param {
    Value *p, *g, *m, *v;
  };
  std::vector<Param> params;
  for (const OptimizerInfo::Param& d : o.params) {
    Value* p = g.FindValue(d.param);
    Value* grad = g.FindValue(d.grad);
    // Adam's moments, or SGD's momentum buffer (in m; v unused).
    Value* m = g.FindValue(sgd ? d.momentum_buffer : d.exp_avg);
    Value* v = sgd ? nullptr : g.FindValue(d.exp_avg_sq);
    std::vector<const std::string*> states = {&d.param};
    if (!sgd) states.insert(states.end(), {&d.exp_avg, &d.exp_avg_sq});
    if (momentum) states.push_back(&d.momentum_buffer);
    for (const std::string* state : states) {
      Value* s = g.FindValue(*state);
      if (!s || !s->has_initializer() || !update_of.count(*state))
        return Internal("the optimizer's description names '", *state, "' as state of '", d.param,
                        "', but it is not an initializer with an update");
    }
    if (!grad)
      return Internal("the optimizer's description names gradient '", d.grad, "' of '", d.param,
                      "', which the step does not compute");
    AMP_ASSIGN_OR_RETURN(Value * g32, Fp32Gradient(grad, d.param));
    params.push_back({p, g32, m, v});
  }
  if (params.empty()) return false;
  // A step without loss scaling never skips: FusedAdam's skip input is then
  // a constant false (its slot is not optional).
  if (!skip) skip = g.AddScalar("optimizer.never_skip", DType::kBool, 0);
  std::vector<Value* Param::*> ins = {&Param::p, &Param::g, &Param::m, &Param::v};
  std::vector<Value* Param::*> outs = {&Param::p, &Param::m, &Param::v};
  if (sgd) {
    ins = {&Param::p, &Param::g};
    outs = {&Param::p};
    if (momentum) {
      ins.push_back(&Param::m);
      outs.push_back(&Param::m);
    }
  }
  std::vector<Value*> inputs = {lr, step, skip};
  for (auto field : ins)
    for (const Param& pr : params) inputs.push_back(pr.*field);
  std::vector<std::string> names;
  for (auto field : outs)
    for (const Param& pr : params) names.push_back((pr.*field)->name() + ".fused_next");
  Node* fused = g.AddNode(sgd ? "FusedSgd" : "FusedAdam", inputs, names, "ai.amp");
  if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
  fused->SetAttr("weight_decay", Attribute::Float(o.weight_decay));
  if (sgd) {
    fused->SetAttr("momentum", Attribute::Float(o.momentum));
    fused->SetAttr("dampening", Attribute::Float(o.dampening));
    fused->SetAttr("nesterov", Attribute::Int(o.nesterov ? 1 : 0));
  } else {
    fused->SetAttr("beta1", Attribute::Float(o.beta1));
    fused->SetAttr("beta2", Attribute::Float(o.beta2));
    fused->SetAttr("eps", Attribute::Float(o.eps));
    fused->SetAttr("decoupled", Attribute::Int(adamw ? 1 : 0));
  }
  fused->set_precision(DType::kFloat32, "optimizer: FP32 master weights and state");
  // Every binding of p, m and v now names the fused outputs.
  std::map<std::string, Value*> replacement;
  size_t n = params.size();
  for (size_t i = 0; i < n; ++i)
    for (size_t f = 0; f < outs.size(); ++f)
      replacement[(params[i].*outs[f])->name()] = fused->output(f * n + i);
  for (auto& [state, update] : t.updates) {
    auto it = replacement.find(state);
    if (it == replacement.end()) continue;
    Value* old = g.FindValue(update);
    g.ReplaceAllUsesWith(old, it->second);
    update = it->second->name();
  }
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
