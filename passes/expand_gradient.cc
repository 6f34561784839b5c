#include "passes/expand_gradient.h"

#include "compiler/shape_inference.h"
#include "passes/autodiff.h"

namespace amp {

StatusOr<bool> ExpandGradient::Run(Model& model) {
  Graph& g = *model.graph;
  std::vector<Node*> gradients;
  for (Node* n : g.nodes())
    if (n->op_type() == "Gradient" && n->domain() == "ai.onnx.preview.training")
      gradients.push_back(n);
  for (Node* n : gradients) {
    const Attribute* xs_attr = n->FindAttr("xs");
    Value* y = g.FindValue(n->GetString("y", ""));
    if (!xs_attr || !y) return InvalidArgument(n->Describe(), ": needs attributes xs and y");
    std::vector<Value*> xs;
    for (const std::string& name : xs_attr->strings) {
      Value* x = g.FindValue(name);
      if (!x) return InvalidArgument(n->Describe(), ": xs names '", name, "', which is undefined");
      xs.push_back(x);
    }
    // Seed: ones shaped like y.
    Value* shape = g.AddNode("Shape", {y}, {y->name() + "_shape"})->output(0);
    Node* ones = g.AddNode("ConstantOfShape", {shape}, {y->name() + "_seed"});
    Tensor one(y->dtype(), {1});
    one.SetDouble(0, 1.0);
    ones->SetAttr("value", Attribute::FromTensor(one));
    AMP_ASSIGN_OR_RETURN(std::vector<Value*> grads, BuildGradients(model, y, ones->output(0), xs));
    for (size_t i = 0; i < xs.size(); ++i) {
      Value* grad = grads[i];
      if (!grad) {  // y does not depend on xs[i]: zeros
        Value* s = g.AddNode("Shape", {xs[i]}, {xs[i]->name() + "_shape"})->output(0);
        Node* zeros = g.AddNode("ConstantOfShape", {s}, {xs[i]->name() + "_zero_grad"});
        Tensor zero(xs[i]->dtype(), {1});
        zeros->SetAttr("value", Attribute::FromTensor(zero));
        grad = zeros->output(0);
      }
      // The Gradient output keeps its name and uses: an Identity now defines it.
      Value* out = n->output(i);
      std::string name = out->name();
      Node* id = g.AddNode("Identity", {grad}, {name + "_expanded"});
      g.ReplaceAllUsesWith(out, id->output(0));
      AMP_RETURN_IF_ERROR(g.RenameValue(out, g.UniqueName(name + "_replaced")));
      AMP_RETURN_IF_ERROR(g.RenameValue(id->output(0), name));
    }
    g.EraseNode(n);
  }
  if (gradients.empty()) return false;
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
