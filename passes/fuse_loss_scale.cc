#include "passes/fuse_loss_scale.h"

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
  Node* fused = g.AddNode("LossScaleUpdate", {scale, tracker, found},
                          {old_scale->name() + "_fused", old_tracker->name() + "_fused"}, "ai.amp");
  if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
  fused->SetAttr("growth_factor", Attribute::Float(rule.growth_factor));
  fused->SetAttr("backoff_factor", Attribute::Float(rule.backoff_factor));
  fused->SetAttr("growth_interval", Attribute::Int(rule.growth_interval));
  if (rule.min_scale > 0) fused->SetAttr("min_scale", Attribute::Float(rule.min_scale));
  if (rule.max_scale > 0) fused->SetAttr("max_scale", Attribute::Float(rule.max_scale));
  fused->set_precision(DType::kFloat32, "loss scaling: the scale's update in FP32");
  // The new values take over the old ones' readers and names (the
  // description's updates name them); the chain they replace is dead.
  for (auto [from, to] :
       {std::pair{old_scale, fused->output(0)}, {old_tracker, fused->output(1)}}) {
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
