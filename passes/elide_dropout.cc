#include "passes/elide_dropout.h"

#include <optional>
#include <set>

#include "compiler/const_eval.h"

namespace amp {

StatusOr<bool> ElideDropout::Run(Model& model) {
  Graph& g = *model.graph;
  std::set<std::string> named = model.training.NamedValues();
  bool changed = false;
  for (Node* n : g.nodes()) {
    if (n->op_type() != "Dropout" || !(n->domain().empty() || n->domain() == "ai.onnx")) continue;
    bool identity = false;
    if (!n->input(2)) {
      identity = true;  // no training_mode: inference, the identity
    } else if (auto mode = ConstantNodeScalar(n->input(2)); mode && *mode == 0) {
      identity = true;
    } else if (!n->input(1)) {
      identity = false;  // training with the default ratio 0.5
    } else if (auto ratio = ConstantNodeScalar(n->input(1)); ratio && *ratio == 0) {
      identity = true;
    }
    if (!identity) continue;
    Value* y = n->output(0);
    Value* mask = n->num_outputs() > 1 ? n->output(1) : nullptr;
    if (y->is_graph_output() || named.count(y->name())) continue;
    if (mask && (!mask->uses().empty() || mask->is_graph_output() || named.count(mask->name())))
      continue;
    g.ReplaceAllUsesWith(y, n->input(0));
    g.EraseNode(n);
    changed = true;
  }
  return changed;
}

}  // namespace amp
