// The IR verifier: structural invariants that every pass must keep. The pass
// pipeline runs it before the first pass and after every pass.
//
//   * every value is defined once (graph input, initializer or node output),
//     and every node input and graph output is defined;
//   * producer and use links agree with node inputs and outputs;
//   * the graph is acyclic and its node order is topological;
//   * every node's recorded output types agree with its op's inference.
#pragma once

#include "compiler/ir.h"
#include "compiler/status.h"

namespace amp {

Status VerifyModel(const Model& model);

}  // namespace amp
