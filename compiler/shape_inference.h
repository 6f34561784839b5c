// Type and shape inference over a whole graph, in topological order, using
// each op's rule in the op table (ops/op_def.h). Constants and shape data
// (the elements of Shape -> Gather -> Concat chains, possibly symbolic such as
// [batch, 8, 4, 8]) are propagated so that Reshape, Expand and friends get
// full output shapes.
#pragma once

#include <unordered_map>

#include "compiler/ir.h"
#include "compiler/status.h"

namespace amp {

// Sets the type of every node output. Declared types (value_info, graph
// outputs) fill in what inference leaves unknown; a contradiction is an error.
// Unknown ops and unsupported opsets are errors naming the node.
Status RunShapeInference(Model& model);

// Re-infers every node and checks that the recorded types agree (element
// types equal, ranks and static dims compatible). Changes nothing. The
// verifier runs it.
Status CheckTypes(const Model& model);

// The node outputs whose data is known at compile time without reading any
// float initializer (float initializers are trainable parameters): results
// of Constant nodes, integer initializers, static shape data, and what the
// constant evaluator computes from those. Changes nothing.
StatusOr<std::unordered_map<const Value*, Tensor>> CompileTimeConstants(const Model& model);

}  // namespace amp
