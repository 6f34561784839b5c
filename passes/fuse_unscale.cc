#include "passes/fuse_unscale.h"

#include "compiler/shape_inference.h"

namespace amp {
StatusOr<bool> FuseUnscale::Run(Model& model) {
  Graph& g = *model.graph;
  TrainingInfo& t = model.training;
  if (t.skip_step.empty()) return false;
  // found_inf = IsNaN(Sum(ReduceSum(Mul(Mul(grad, inv), 0)), ...))
  Value* found = g.FindValue(t.skip_step);
  Node* isnan = ProducerIf(found, "IsNaN");
  if (!isnan) return false;
  std::vector<Value*> sums;
  if (Node* sum = ProducerIf(isnan->input(0), "Sum")) {
    sums.assign(sum->inputs().begin(), sum->inputs().end());
  } else {
    sums.push_back(isnan->input(0));
  }
  Value* inv = nullptr;
  std::vector<Value*> unscaled, grads;
  for (Value* s : sums) {
    Node* reduce = ProducerIf(s, "ReduceSum");
    Node* probe = reduce ? ProducerIf(reduce->input(0), "Mul") : nullptr;
    Node* mul = probe ? ProducerIf(probe->input(0), "Mul") : nullptr;
    if (!mul || reduce->num_inputs() != 1) return false;
    if (inv && mul->input(1) != inv) return false;
    inv = mul->input(1);
    if (mul->input(0)->dtype() != DType::kFloat32) return false;
    unscaled.push_back(mul->output(0));
    grads.push_back(mul->input(0));
  }
  std::vector<Value*> inputs = {inv};
  inputs.insert(inputs.end(), grads.begin(), grads.end());
  std::vector<std::string> names;
  for (Value* u : unscaled) names.push_back(u->name() + "_fused");
  names.push_back(found->name() + "_fused");
  Node* fused = g.AddNode("UnscaleCheck", inputs, names, "ai.amp");
  if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
  fused->set_precision(DType::kFloat32, "loss scaling: unscale and check in FP32");
  for (size_t i = 0; i < unscaled.size(); ++i) g.ReplaceAllUsesWith(unscaled[i], fused->output(i));
  Value* new_found = fused->output(unscaled.size());
  g.ReplaceAllUsesWith(found, new_found);
  t.skip_step = new_found->name();
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(InferShapes(model));
  return true;
}

}  // namespace amp
