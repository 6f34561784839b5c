#include "runtime/memory_plan.h"

#include <algorithm>

namespace amp {

MemoryPlan PlanMemory(const std::vector<const Node*>& order,
                      const std::function<bool(const Value*)>& in_arena,
                      const std::unordered_set<const Value*>& keep, size_t alignment) {
  struct Interval {
    const Value* v;
    size_t bytes;
    size_t first, last;  // node positions, inclusive
  };
  std::unordered_map<const Value*, size_t> index;
  std::vector<Interval> live;
  const size_t end = order.size();
  for (size_t pos = 0; pos < order.size(); ++pos) {
    for (const Value* in : order[pos]->inputs()) {
      auto it = in ? index.find(in) : index.end();
      if (it != index.end()) live[it->second].last = std::max(live[it->second].last, pos);
    }
    for (const Value* out : order[pos]->outputs()) {
      if (!out || !in_arena(out)) continue;
      size_t bytes = static_cast<size_t>(*out->type().NumElements()) * DTypeSize(out->dtype());
      bytes = (std::max<size_t>(bytes, 1) + alignment - 1) / alignment * alignment;
      index[out] = live.size();
      // A value nobody reads still needs its bytes while its node runs.
      live.push_back({out, bytes, pos, keep.count(out) ? end : pos});
    }
  }
  MemoryPlan plan;
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
  return plan;
}

}  // namespace amp
