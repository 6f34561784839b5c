// Strided views: which elements of a tensor's contiguous storage a logical
// tensor is, through the layout ops exporters write around attention
// (Reshape, Transpose, Squeeze, Unsqueeze, Flatten, Identity; Gather of one
// constant index, Slice and Split with constant bounds; Concat downwards).
// A kernel that reads or writes such a view needs no copy of it: the
// layout ops become index arithmetic (fold-attention-views).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compiler/ir.h"

namespace amp {

// Element i (a multi-index into `sizes`) of the view is element
// offset + sum_d i_d * strides[d] of the tensor's contiguous storage.
struct StridedView {
  int64_t offset = 0;
  std::vector<int64_t> sizes, strides;

  static StridedView Contiguous(const std::vector<int64_t>& dims);
  int64_t num_elements() const;
  // The largest storage index the view touches (offset for an empty view).
  int64_t last_index() const;
  bool operator==(const StridedView&) const = default;
  std::string ToString() const;  // "offset 3, [2x4 : 8, 1]"
};

// The same elements of the storage of a tensor of `dims` seen through the op
// `n` (one step of a walk; nullopt when the view does not survive it):
//  * Up (ViewThroughProducer): `view` is of n's output; the result is the
//    same elements as a view of n's input 0.
//  * Down (ViewThroughConsumer): `view` is of n's input `input`; the result
//    is those elements as a view of n's output 0 (only for ops whose output
//    holds every element of that input once: no Gather, Slice or Split).
std::optional<StridedView> ViewThroughProducer(const Node& n, const StridedView& view);
std::optional<StridedView> ViewThroughConsumer(const Node& n, size_t input,
                                               const StridedView& view);

// A value `v` as a view of a value further up (ReadView) or down (WriteView),
// and the layout nodes walked.
struct ValueView {
  Value* base = nullptr;
  StridedView view;
  std::vector<Node*> walked;  // from v's end
};

// Walks up from `v` (static shape) through layout producers as long as the
// view survives; base is v itself when it does not survive the first step.
// `start` is the elements of v to follow (all of v, row-major, by default).
std::optional<ValueView> ReadView(Value* v);
std::optional<ValueView> ReadView(Value* v, const StridedView& start);
// Walks down from `v` while its only reader is a layout op through which the
// view survives, stopping at a value `stop` says must stay (a graph output,
// a value kept after the step) and never walking into one whose other
// readers would see it half written: every value passed has that one reader.
template <typename Stop>
std::optional<ValueView> WriteView(Value* v, const Stop& stop);
template <typename Stop>
ValueView WriteView(Value* v, const StridedView& start, const Stop& stop);

// True when `op` is one of the layout ops a view passes through.
bool IsLayoutOp(const Node& n);

// --- implementation of the template ---
std::optional<StridedView> ContiguousViewOf(const Value* v);
template <typename Stop>
std::optional<ValueView> WriteView(Value* v, const Stop& stop) {
  auto start = ContiguousViewOf(v);
  if (!start) return std::nullopt;
  return WriteView(v, *start, stop);
}
template <typename Stop>
ValueView WriteView(Value* v, const StridedView& start, const Stop& stop) {
  ValueView out{v, start, {}};
  while (!stop(out.base) && !out.base->is_graph_output() && out.base->uses().size() == 1) {
    const Use& u = out.base->uses()[0];
    if (!IsLayoutOp(*u.node) || !u.node->output(0)->type().has_static_shape()) break;
    auto next = ViewThroughConsumer(*u.node, static_cast<size_t>(u.index), out.view);
    if (!next) break;
    out.walked.push_back(u.node);
    out.base = u.node->output(0);
    out.view = *next;
  }
  return out;
}

}  // namespace amp
