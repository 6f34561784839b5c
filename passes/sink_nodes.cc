#include "passes/sink_nodes.h"

#include <algorithm>
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

// Outputs smaller than this are not worth a move (shape arithmetic: moving
// its scalars around only reorders the step).
constexpr int64_t kMinBytes = 16 << 10;

// The bytes of v (sized = false when its shape is not static).
int64_t Bytes(const Value* v, bool* sized) {
  if (!v) return 0;
  auto n = v->type().NumElements();
  if (!n) {
    *sized = false;
    return 0;
  }
  return *n * static_cast<int64_t>(DTypeSize(v->dtype()));
}

// One sweep from the last node to the first, moving each node that can go
// down; false when none moved.
bool SinkRound(Graph& g) {
  std::vector<Node*> order = g.nodes();
  std::unordered_map<const Node*, size_t> at;
  for (size_t i = 0; i < order.size(); ++i) at[order[i]] = i;
  // A node's first reader in the current order (null: none, or a graph output).
  auto first_reader = [&](const Node* n) -> Node* {
    Node* first = nullptr;
    for (const Value* out : n->outputs()) {
      if (out->is_graph_output()) return nullptr;
      for (const Use& u : out->uses())
        if (!first || at[u.node] < at[first]) first = u.node;
    }
    return first;
  };
  bool moved = false;
  for (size_t k = order.size(); k-- > 0;) {
    Node* n = order[k];
    if (IsConstant(n) || n->num_outputs() == 0) continue;
    Node* first = first_reader(n);
    if (!first || at[first] == k + 1) continue;
    size_t to = at[first];
    // Inputs whose last read would come later: at most the outputs' bytes
    // (then no point of the step holds more than before: between an
    // input's old last read and the reader, the input takes the place the
    // output held).
    int64_t extended = 0, held = 0;
    bool sized = true;
    for (const Value* in : n->inputs()) {
      if (Resident(in)) continue;
      bool read_there = false;
      for (const Use& u : in->uses()) read_there = read_there || (u.node != n && at[u.node] >= to);
      if (!read_there) extended += Bytes(in, &sized);
    }
    for (const Value* out : n->outputs()) held += Bytes(out, &sized);
    if (!sized || extended > held || held < kMinBytes) continue;
    // Nothing to gain across Constants (they hold nothing in the arena) or
    // nodes waiting for the same reader.
    bool separated = false;
    for (size_t i = k + 1; i < to && !separated; ++i)
      separated = !IsConstant(order[i]) && first_reader(order[i]) != first;
    if (!separated) continue;
    g.MoveBefore(n, first);
    std::rotate(order.begin() + static_cast<std::ptrdiff_t>(k),
                order.begin() + static_cast<std::ptrdiff_t>(k) + 1,
                order.begin() + static_cast<std::ptrdiff_t>(to));
    for (size_t i = k; i < to; ++i) at[order[i]] = i;
    moved = true;
  }
  return moved;
}

}  // namespace

StatusOr<bool> SinkNodes::Run(Model& model) {
  bool changed = false;
  // Nodes only move down; a sweep can open room for another (a node whose
  // reader moved), so sweep until none moves (a few sweeps in practice).
  for (int round = 0; round < 64 && SinkRound(*model.graph); ++round) changed = true;
  // An update nothing in the step reads, computed from its own state while
  // others still read that state (the optimizer's step count, read by the
  // update itself and by the Adam kernel), goes last: then it may write
  // over the state instead of being copied there after the step.
  Graph& g = *model.graph;
  std::unordered_map<std::string, std::string> state_of;  // update -> state
  for (const auto& [state, update] : model.training.updates) state_of[update] = state;
  std::vector<Node*> order = g.nodes();
  std::unordered_map<const Node*, size_t> at;
  for (size_t i = 0; i < order.size(); ++i) at[order[i]] = i;
  for (Node* n : order) {
    bool unread = !IsConstant(n) && n->num_outputs() > 0;
    bool over_state = false;
    for (const Value* out : n->outputs()) {
      unread = unread && out->uses().empty();
      auto it = state_of.find(out->name());
      if (it == state_of.end()) continue;
      for (const Value* in : n->inputs())
        if (in && in->name() == it->second)
          for (const Use& u : in->uses()) over_state = over_state || at[u.node] > at[n];
    }
    if (!unread || !over_state) continue;
    // (Its other inputs then live to the end: only scalars-sized ones.)
    bool small = true, sized = true;
    for (const Value* in : n->inputs())
      small = small && (Resident(in) || Bytes(in, &sized) < kMinBytes);
    if (!small || !sized) continue;
    g.MoveToEnd(n);
    changed = true;
  }
  return changed;
}

}  // namespace amp
