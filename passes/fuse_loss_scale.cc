#include "passes/fuse_loss_scale.h"

#include "compiler/const_eval.h"
#include "compiler/shape_inference.h"
#include "passes/dce.h"

namespace amp {

StatusOr<bool> FuseLossScale::Run(Model& model) {
  Graph& g = *model.graph;
  TrainingInfo& t = model.training;
  const auto& rule = t.loss_scale_rule;
  if (rule.growth_interval < 1 || t.loss_scale.empty() || t.growth_tracker.empty() ||
      t.skip_step.empty())
    return false;
  Value* scale = g.FindValue(t.loss_scale);
  Value* tracker = g.FindValue(t.growth_tracker);
  Value* found = g.FindValue(t.skip_step);
  std::string* scale_next = nullptr;
  std::string* tracker_next = nullptr;
  for (auto& [state, update] : t.updates) {
    if (state == t.loss_scale) scale_next = &update;
    if (state == t.growth_tracker) tracker_next = &update;
  }
  if (!scale || !tracker || !found || !scale_next || !tracker_next)
    return Internal("loss scaling's description names a scale, tracker or flag the step lacks");
  Value* old_scale = g.FindValue(*scale_next);
  Value* old_tracker = g.FindValue(*tracker_next);
  if (!old_scale || !old_tracker)
    return Internal("loss scaling's description names updates the step does not compute");
  Node* p = old_scale->producer();
  if (p && p->domain() == "ai.amp" && p->op_type() == "LossScaleUpdate") return false;  // fused
  if (scale->dtype() != DType::kFloat32 || tracker->dtype() != DType::kInt64 ||
      found->dtype() != DType::kBool)
    return false;
  // The optimizer's step count, which a skipped step keeps (the optimizer
  // pass writes N' = Where (F, N, N + 1)): one more scalar of the same
  // launch.
  Value* step = t.optimizer_step.empty() ? nullptr : g.FindValue(t.optimizer_step);
  std::string* step_next = nullptr;
  for (auto& [state, update] : t.updates)
    if (step && state == step->name()) step_next = &update;
  Value* old_step = step_next ? g.FindValue(*step_next) : nullptr;
  if (Node* w = ProducerIf(old_step, "Where");
      !w || w->input(0) != found || w->input(1) != step || step->dtype() != DType::kFloat32 ||
      !IsDefaultOp(w->input(2)->producer(), "Add") || w->input(2)->producer()->input(0) != step ||
      ConstantNodeScalar(w->input(2)->producer()->input(1)) != std::optional<double>(1.0))
    old_step = nullptr;
  std::vector<Value*> inputs = {scale, tracker, found};
  std::vector<std::string> names = {old_scale->name() + "_fused", old_tracker->name() + "_fused"};
  if (old_step) {
    inputs.push_back(step);
    names.push_back(old_step->name() + "_fused");
  }
  Node* fused = g.AddNode("LossScaleUpdate", inputs, names, "ai.amp");
  if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
  fused->SetAttr("growth_factor", Attribute::Float(rule.growth_factor));
  fused->SetAttr("backoff_factor", Attribute::Float(rule.backoff_factor));
  fused->SetAttr("growth_interval", Attribute::Int(rule.growth_interval));
  if (rule.min_scale > 0) fused->SetAttr("min_scale", Attribute::Float(rule.min_scale));
  if (rule.max_scale > 0) fused->SetAttr("max_scale", Attribute::Float(rule.max_scale));
  fused->set_precision(DType::kFloat32, "loss scaling: the scale's update in FP32");
  // The new values take over the old ones' readers and names (the
  // description's updates name them); the chain they replace is dead.
  std::vector<std::pair<Value*, Value*>> results = {{old_scale, fused->output(0)},
                                                    {old_tracker, fused->output(1)}};
  if (old_step) results.emplace_back(old_step, fused->output(2));
  for (auto [from, to] : results) {
    std::string name = from->name();
    g.ReplaceAllUsesWith(from, to);
    AMP_RETURN_IF_ERROR(g.RenameValue(from, name + "_unfused"));
    AMP_RETURN_IF_ERROR(g.RenameValue(to, name));
  }
  AMP_RETURN_IF_ERROR(Dce().Run(model).status());
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
