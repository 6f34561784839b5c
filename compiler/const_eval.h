// A small evaluator for compile-time constants: the integer shape arithmetic
// that exporters emit (Shape -> Gather -> Concat -> Reshape, Range, ...), and
// scalar float math on Constants. Not a runtime: inputs are small tensors.
#pragma once

#include <optional>
#include <vector>

#include "compiler/ir.h"
#include "compiler/status.h"

namespace amp {

// Largest constant (in elements) that inference and folding will compute.
inline constexpr int64_t kMaxFoldElements = 1 << 16;

// Evaluates `node` given constant `inputs` (null for omitted optional inputs)
// and the inferred `output_types` (which must have static shapes). Returns
// nullopt for ops the evaluator does not know.
StatusOr<std::optional<std::vector<Tensor>>> EvaluateNode(
    const Node& node, const std::vector<const Tensor*>& inputs,
    const std::vector<TensorType>& output_types);

// The tensor a Constant node holds (value, value_float(s) or value_int(s)).
StatusOr<Tensor> ConstantNodeValue(const Node& node);
// The tensor a default-domain Constant node gives `v`, else nullopt.
std::optional<Tensor> ConstantNodeTensor(const Value* v);
// The element of `v` when a default-domain Constant node with one element
// defines it (a scale, an epsilon, a ratio), else nullopt.
std::optional<double> ConstantNodeScalar(const Value* v);

// The axes a reduction node (ReduceSum, ReduceMean, ...) reduces over, from
// its attribute or a Constant node's input, normalized into [0, rank) and
// sorted without repeats; nullopt when they are not known constants or out of
// range. (Empty axes mean all of them unless noop_with_empty_axes is set.)
std::optional<std::vector<int64_t>> ConstantReduceAxes(const Node& reduce, int64_t rank);

// True for the ops EvaluateNode knows.
bool CanEvaluate(const std::string& op_type);

}  // namespace amp
