#include "passes/sink_nodes.h"

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

// One move (the latest node that can go down), or false when none can.
bool SinkOne(Graph& g) {
  std::vector<Node*> order = g.nodes();
  std::unordered_map<const Node*, size_t> at;
  for (size_t i = 0; i < order.size(); ++i) at[order[i]] = i;
  // Each node's first reader (null: none, or a graph output).
  std::unordered_map<const Node*, Node*> first_reader;
  for (Node* n : order) {
    Node* first = nullptr;
    bool graph_output = false;
    for (const Value* out : n->outputs()) {
      graph_output = graph_output || out->is_graph_output();
      for (const Use& u : out->uses())
        if (!first || at[u.node] < at[first]) first = u.node;
    }
    first_reader[n] = graph_output ? nullptr : first;
  }
  for (size_t k = order.size(); k-- > 0;) {
    Node* n = order[k];
    if (IsConstant(n) || n->num_outputs() == 0) continue;
    Node* first = first_reader[n];
    if (!first || at[first] == k + 1) continue;
    size_t to = at[first];
    bool keeps_inputs = true;
    for (const Value* in : n->inputs()) {
      if (Resident(in)) continue;
      bool read_there = false;
      for (const Use& u : in->uses()) read_there = read_there || (u.node != n && at[u.node] >= to);
      keeps_inputs = keeps_inputs && read_there;
    }
    if (!keeps_inputs) continue;
    // Nothing to gain across Constants (they hold nothing in the arena) or
    // nodes waiting for the same reader.
    bool separated = false;
    for (size_t i = k + 1; i < to && !separated; ++i)
      separated = !IsConstant(order[i]) && first_reader[order[i]] != first;
    if (!separated) continue;
    g.MoveBefore(n, first);
    return true;
  }
  return false;
}

}  // namespace

StatusOr<bool> SinkNodes::Run(Model& model) {
  bool changed = false;
  // (Nodes only move down, each at most past every other node once.)
  while (SinkOne(*model.graph)) changed = true;
  return changed;
}

}  // namespace amp
