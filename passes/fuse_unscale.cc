#include "passes/fuse_unscale.h"

#include "compiler/shape_inference.h"

namespace amp {
StatusOr<bool> FuseUnscale::Run(Model& model) {
  Graph& g = *model.graph;
  TrainingInfo& t = model.training;
  // What to fuse comes from loss scaling's typed description: 1/S, each
  // gradient's unscaled value (a Mul by 1/S) and the found-inf flag.
  if (t.skip_step.empty() || t.unscaled.empty()) return false;
  Value* found = g.FindValue(t.skip_step);
  if (found && found->producer() && found->producer()->op_type() == "UnscaleCheck")
    return false;  // fused
  Value* inv = g.FindValue(t.inverse_scale);
  if (!found || !inv)
    return Internal("loss scaling's description names '", t.skip_step, "' and '", t.inverse_scale,
                    "', which the step does not compute");
  std::vector<Value*> unscaled, grads;
  for (const auto& [param, name] : t.unscaled) {
    Value* u = g.FindValue(name);
    Node* mul = ProducerIf(u, "Mul");
    if (!mul || mul->input(1) != inv || mul->input(0)->dtype() != DType::kFloat32)
      return Internal("loss scaling's description names '", name, "' as the unscaled gradient of '",
                      param, "', but it is not an FP32 Mul by '", inv->name(), "'");
    unscaled.push_back(u);
    grads.push_back(mul->input(0));
  }
  // 1/S as loss-scaling writes it, a Reciprocal of the scale, is taken
  // inside the fused node (the same FP32 value, one launch fewer); the
  // description's 1/S then names nothing.
  Node* reciprocal = ProducerIf(inv, "Reciprocal");
  std::vector<Value*> inputs = {reciprocal ? reciprocal->input(0) : inv};
  inputs.insert(inputs.end(), grads.begin(), grads.end());
  std::vector<std::string> names;
  for (Value* u : unscaled) names.push_back(u->name() + "_fused");
  names.push_back(found->name() + "_fused");
  Node* fused = g.AddNode("UnscaleCheck", inputs, names, "ai.amp");
  if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
  fused->set_precision(DType::kFloat32, "loss scaling: unscale and check in FP32");
  if (reciprocal) {
    fused->SetAttr("invert_scale", Attribute::Int(1));
    t.inverse_scale.clear();
  }
  // The fused outputs take over every use, and every name the step's
  // description gives (the probes die with the old flag).
  for (size_t i = 0; i < unscaled.size(); ++i) {
    g.ReplaceAllUsesWith(unscaled[i], fused->output(i));
    t.Rename(unscaled[i]->name(), fused->output(i)->name());
  }
  Value* new_found = fused->output(unscaled.size());
  g.ReplaceAllUsesWith(found, new_found);
  t.Rename(found->name(), new_found->name());
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
