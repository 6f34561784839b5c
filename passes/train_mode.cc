#include "passes/train_mode.h"

#include "compiler/shape_inference.h"

namespace amp {

StatusOr<bool> TrainMode::Run(Model& model) {
  Graph& g = *model.graph;
  bool changed = false;
  for (Node* n : g.nodes()) {
    if (!IsDefaultOp(n, "BatchNormalization") || n->GetInt("training_mode", 0) != 0) continue;
    if (model.OpsetVersion("") < 14)
      return Unimplemented(n->Describe(), ": --train-mode needs BatchNormalization of opset 14 ",
                           "or later (training_mode); the model is opset ", model.OpsetVersion(""));
    if (n->num_inputs() != 5 || n->num_outputs() != 1) continue;  // the verifier names it
    n->SetAttr("training_mode", Attribute::Int(1));
    const std::string base = n->output(0)->name();
    g.AddNodeOutput(n, base + "_running_mean");
    g.AddNodeOutput(n, base + "_running_var");
    changed = true;
  }
  if (changed) AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return changed;
}

}  // namespace amp
