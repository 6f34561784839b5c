#include "codegen/memory_plan.h"

#include <algorithm>

namespace amp {

bool IsViewOp(const Node& n) {
  const std::string& op = n.op_type();
  return (n.domain().empty() || n.domain() == "ai.onnx") &&
         (op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze" ||
          op == "Identity");
}

MemoryPlan PlanMemory(const std::vector<const Node*>& order,
                      const std::function<bool(const Value*)>& in_arena,
                      const std::unordered_set<const Value*>& keep, size_t alignment,
                      const InplacePairs& inplace) {
  struct Interval {
    const Value* v;
    size_t bytes;
    size_t first, last;  // node positions, inclusive
  };
  std::unordered_map<const Value*, size_t> index;
  std::vector<Interval> live;
  std::vector<std::pair<const Value*, size_t>> aliases;  // view -> its root's interval
  MemoryPlan plan;
  const size_t end = order.size();
  for (size_t pos = 0; pos < order.size(); ++pos) {
    for (const Value* in : order[pos]->inputs()) {
      auto it = in ? index.find(in) : index.end();
      if (it != index.end()) live[it->second].last = std::max(live[it->second].last, pos);
    }
    const Node* n = order[pos];
    std::vector<std::pair<int, int>> pairs;
    if (inplace) pairs = inplace(*n);
    std::unordered_set<const Value*> taken;  // inputs an output already writes over
    for (size_t k = 0; k < n->num_outputs(); ++k) {
      const Value* out = n->output(k);
      if (!out || !in_arena(out)) continue;
      size_t bytes = static_cast<size_t>(*out->type().NumElements()) * DTypeSize(out->dtype());
      bytes = (std::max<size_t>(bytes, 1) + alignment - 1) / alignment * alignment;
      // A view (Reshape and friends) shares its input's bytes: values are
      // never written after their node runs, so the two can be one buffer,
      // live until the last use of either.
      const Value* in = n->num_inputs() > 0 ? n->input(0) : nullptr;
      auto root = in ? index.find(in) : index.end();
      if (IsViewOp(*n) && out == n->output(0) && root != index.end() &&
          live[root->second].bytes == bytes) {
        index[out] = root->second;
        aliases.emplace_back(out, root->second);
        plan.unshared_bytes += bytes;
        if (keep.count(out)) live[root->second].last = end;
        continue;
      }
      // In place: an input that this node is the only reader of, its own
      // bytes (not a view's), the same size, not kept.
      bool placed = false;
      for (auto [o, i] : pairs) {
        const Value* victim = o == static_cast<int>(k) ? n->input(i) : nullptr;
        if (!victim || taken.count(victim) || keep.count(victim) || victim->is_graph_output() ||
            victim->uses().size() != 1)
          continue;
        auto it = index.find(victim);
        if (it == index.end() || live[it->second].v != victim || live[it->second].bytes != bytes)
          continue;
        index[out] = it->second;
        aliases.emplace_back(out, it->second);
        live[it->second].last = keep.count(out) ? end : pos;
        taken.insert(victim);
        plan.unshared_bytes += bytes;
        ++plan.in_place;
        placed = true;
        break;
      }
      if (placed) continue;
      index[out] = live.size();
      // A value nobody reads still needs its bytes while its node runs.
      live.push_back({out, bytes, pos, keep.count(out) ? end : pos});
    }
  }
  std::vector<size_t> by_size(live.size());
  for (size_t i = 0; i < live.size(); ++i) {
    by_size[i] = i;
    plan.unshared_bytes += live[i].bytes;
  }
  std::stable_sort(by_size.begin(), by_size.end(),
                   [&](size_t a, size_t b) { return live[a].bytes > live[b].bytes; });
  struct Placed {
    size_t offset, bytes, first, last;
  };
  std::vector<Placed> placed;
  for (size_t i : by_size) {
    const Interval& iv = live[i];
    // Blocks already placed whose lifetimes overlap this one, by offset.
    std::vector<const Placed*> conflicts;
    for (const Placed& p : placed)
      if (p.first <= iv.last && iv.first <= p.last) conflicts.push_back(&p);
    std::sort(conflicts.begin(), conflicts.end(),
              [](const Placed* a, const Placed* b) { return a->offset < b->offset; });
    size_t offset = 0;
    for (const Placed* p : conflicts) {
      if (offset + iv.bytes <= p->offset) break;
      offset = std::max(offset, p->offset + p->bytes);
    }
    placed.push_back({offset, iv.bytes, iv.first, iv.last});
    plan.offsets[iv.v] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + iv.bytes);
  }
  for (const auto& [v, root] : aliases) plan.offsets[v] = plan.offsets.at(live[root].v);
  plan.aliased = aliases.size();
  return plan;
}

}  // namespace amp
