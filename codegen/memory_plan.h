// The static memory plan: every intermediate value of a step gets an offset
// in one arena, fixed before the first step. Values whose lifetimes (from the
// node that defines them to the last node that reads them) do not overlap
// share bytes. Placement is greedy by size (largest first, lowest offset
// that fits), as TFLite's arena planner does. The output of a view op
// (Reshape, Flatten, Squeeze, Unsqueeze, Identity) of an arena value shares
// that value's bytes; backends' kernels for these ops copy nothing when the
// pointers are equal.
#pragma once

#include <cstddef>
#include <functional>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "compiler/ir.h"

namespace amp {

// Reshape, Flatten, Squeeze, Unsqueeze, Identity: ops whose output may be
// their input's bytes (what the plan aliases and the cost model does not
// count as a launch).
bool IsViewOp(const Node& n);

struct MemoryPlan {
  std::unordered_map<const Value*, size_t> offsets;  // arena values -> byte offset
  size_t arena_bytes = 0;                            // the planned peak: the arena's size
  size_t unshared_bytes = 0;  // what the same values would take without reuse
  size_t aliased = 0;         // views (Reshape, Squeeze, ...) that share their input's bytes
  size_t in_place = 0;        // outputs written over an input that dies there
};

// `order`: the nodes in execution order. `in_arena(v)`: whether v's memory
// comes from the arena (not an input, initializer or other pinned buffer);
// v's type must have a static shape. Values in `keep` stay live to the end
// (graph outputs, values read after the step). Offsets are `alignment`-aligned.
// `inplace(n)`, when given, names output/input pairs of `n` that may share
// bytes (its kernel reads an element before writing it): an output then
// takes the bytes of an input that dies at `n` (read by nothing else, not
// kept) instead of bytes of its own.
using InplacePairs = std::function<std::vector<std::pair<int, int>>(const Node&)>;
MemoryPlan PlanMemory(const std::vector<const Node*>& order,
                      const std::function<bool(const Value*)>& in_arena,
                      const std::unordered_set<const Value*>& keep, size_t alignment = 64,
                      const InplacePairs& inplace = nullptr);

}  // namespace amp
