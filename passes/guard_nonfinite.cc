#include "passes/guard_nonfinite.h"

#include <algorithm>
#include <vector>

#include "compiler/shape_inference.h"

namespace amp {

StatusOr<bool> GuardNonfinite::Run(Model& model) {
  Graph& g = *model.graph;
  TrainingInfo& t = model.training;
  if (!t.active() || !t.has_optimizer || !t.skip_step.empty() || t.updates.empty()) return false;
  std::vector<Value*> checked;
  if (Value* loss = g.FindValue(t.loss); loss && IsFloat(loss->dtype())) checked.push_back(loss);
  // The gradients the optimizer reads (and any the step exposes besides).
  std::vector<std::pair<std::string, std::string>> grads(t.gradients.begin(), t.gradients.end());
  for (const OptimizerInfo::Param& p : t.optimizer.params) grads.emplace_back(p.param, p.grad);
  for (const auto& [param, grad] : grads) {
    Value* v = g.FindValue(grad);
    if (!v)
      return Internal("the step's description names '", grad, "' as the gradient of '", param,
                      "', which the step does not compute");
    if (std::find(checked.begin(), checked.end(), v) == checked.end()) checked.push_back(v);
  }
  if (checked.empty()) return false;
  Node* any = g.AddNode("AnyNonFinite", checked, {"step_nonfinite"}, "ai.amp");
  if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
  any->set_precision(DType::kFloat32, "guard-nonfinite: reads the values as they are");
  Value* bad = any->output(0);
  for (auto& [state, update] : t.updates) {
    Value* s = g.FindValue(state);
    Value* u = g.FindValue(update);
    if (!s || !u)
      return Internal("the step's description names '", state, "' -> '", update,
                      "' as an update, which the step does not have");
    Node* w = g.AddNode("Where", {bad, s, u}, {state + ".kept_or_next"});
    w->set_precision(DType::kFloat32, "guard-nonfinite: a skipped step keeps the state");
    // The step's outputs (what keeps an update alive) name the kept value.
    for (size_t i = 0; i < g.outputs().size(); ++i)
      if (g.outputs()[i] == u) g.SetOutput(i, w->output(0));
    update = w->output(0)->name();
  }
  t.skip_step = bad->name();
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
