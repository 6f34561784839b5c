#include "passes/dce.h"

#include <unordered_set>

namespace amp {

StatusOr<bool> Dce::Run(Model& model) {
  Graph& g = *model.graph;
  // Mark backwards from the graph outputs.
  std::unordered_set<const Node*> live;
  std::vector<const Node*> work;
  for (const Value* out : g.outputs())
    if (out->producer() && live.insert(out->producer()).second) work.push_back(out->producer());
  while (!work.empty()) {
    const Node* n = work.back();
    work.pop_back();
    for (const Value* in : n->inputs())
      if (in && in->producer() && live.insert(in->producer()).second)
        work.push_back(in->producer());
  }
  bool changed = false;
  std::vector<Node*> nodes = g.nodes();
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {  // consumers before producers
    if (live.count(*it)) continue;
    g.EraseNode(*it);
    changed = true;
  }
  for (Value* init : g.initializers()) {
    if (init->uses().empty() && !init->is_graph_output()) {
      g.EraseInitializer(init);
      changed = true;
    }
  }
  return changed;
}

}  // namespace amp
