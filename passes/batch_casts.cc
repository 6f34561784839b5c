#include "passes/batch_casts.h"

#include <map>
#include <vector>

#include "compiler/shape_inference.h"

namespace amp {

StatusOr<bool> BatchCasts::Run(Model& model) {
  Graph& g = *model.graph;
  std::map<DType, std::vector<Node*>> by_type;  // in schedule order
  for (Node* n : g.nodes()) {
    if (n->op_type() != "Cast" || !(n->domain().empty() || n->domain() == "ai.onnx")) continue;
    const Value* in = n->input(0);
    DType to = n->output(0)->dtype();
    if (in->producer() || !IsFloat(in->dtype()) || !IsFloat(to) || in->dtype() == to) continue;
    by_type[to].push_back(n);
  }
  bool changed = false;
  for (auto& [to, casts] : by_type) {
    if (casts.size() < 2) continue;
    std::vector<Value*> inputs;
    std::vector<std::string> names;
    for (Node* c : casts) {
      inputs.push_back(c->input(0));
      names.push_back(c->output(0)->name() + "_multi");
    }
    Node* m = g.AddNode("MultiCast", inputs, names, "ai.amp");
    if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
    m->SetAttr("to", Attribute::Int(static_cast<int64_t>(to)));
    m->set_name(casts.front()->name().empty() ? "" : casts.front()->name() + "/multi");
    g.MoveBefore(m, casts.front());
    for (size_t k = 0; k < casts.size(); ++k) {
      Value* old = casts[k]->output(0);
      std::string name = old->name();
      m->output(k)->set_type(old->type());
      g.ReplaceAllUsesWith(old, m->output(k));
      g.EraseNode(casts[k]);
      AMP_RETURN_IF_ERROR(g.RenameValue(m->output(k), name));
    }
    changed = true;
  }
  if (!changed) return false;
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
