#include "passes/sink_sources.h"

#include <unordered_map>
#include <vector>

namespace amp {
namespace {

bool IsConstant(const Node* n) {
  return n && n->op_type() == "Constant" && (n->domain().empty() || n->domain() == "ai.onnx");
}

// Whether v lives for the whole step whatever the order: an initializer, a
// graph input, or a Constant node's output.
bool Resident(const Value* v) {
  return !v || v->has_initializer() || v->is_graph_input() || IsConstant(v->producer());
}

}  // namespace

StatusOr<bool> SinkSources::Run(Model& model) {
  Graph& g = *model.graph;
  std::vector<Node*> order = g.nodes();
  std::unordered_map<const Node*, size_t> at;
  for (size_t i = 0; i < order.size(); ++i) at[order[i]] = i;
  bool changed = false;
  for (Node* n : order) {
    if (IsConstant(n) || n->num_outputs() == 0) continue;
    bool source = true;
    for (const Value* in : n->inputs()) source = source && Resident(in);
    if (!source) continue;
    // The first reader, in the current order (graph outputs read it at the end).
    Node* first = nullptr;
    for (const Value* out : n->outputs())
      for (const Use& u : out->uses())
        if (!first || at[u.node] < at[first]) first = u.node;
    if (!first) continue;
    // Already right before it (nothing but other sources in between is fine
    // too: only move when some other node separates them).
    bool separated = false;
    for (size_t i = at[n] + 1; i < at[first] && !separated; ++i) {
      const Node* m = order[i];
      bool other_source = !IsConstant(m);
      for (const Value* in : m->inputs()) other_source = other_source && Resident(in);
      separated = !other_source && !IsConstant(m);
    }
    if (!separated) continue;
    g.MoveBefore(n, first);
    changed = true;
  }
  return changed;
}

}  // namespace amp
