// fuse-elementwise: chains of elementwise ops (arithmetic, comparisons,
// Where, Cast, the activations: ops/fused_elementwise.h's FusableOps) whose
// results all have one static shape become one ai.amp FusedElementwise
// node, a program the backend runs in one pass over the elements: one kernel
// launch instead of one per op, and no memory for the values used only
// inside the chain. Inputs may broadcast to the shape (a bias, a per-row
// statistic, a scalar).
//
//   before:  %a = Mul(%x, %w)            after:  %a, %y = ai.amp.FusedElementwise(%x, %w, %b)
//            %c = Add(%a, %b)                       ops = ["Mul", "Add", "Erf"]
//            %y = Erf(%c)                           results = [3, 5]     (%c is gone)
//            ... Foo(%a), Bar(%y)
//
// Each instruction computes its op as the op's own kernel does and rounds
// to its result type, so the fused step's values are the unfused step's,
// bit for bit. A value stays an output of the fused node when something
// outside the chain reads it, it is a graph output, or the step's
// description or the caller (`keep`) names it.
//
// The schedule does not change, but for one move: a Cast of an elementwise
// result a few nodes after it (the half copy of a gradient the GEMMs read,
// after the bias gradient's ReduceSum of the FP32 value) moves up to just
// after its producer, so that it joins the chain as one more result. Then
// the fused node takes the place of the chain's last op, and a node joins a
// chain only when nothing outside the chain reads the chain's values before
// that node's place. Fusion runs at
// specialization, after shapes are static; the exported step keeps
// standard ops.
#pragma once

#include <set>
#include <string>

#include "passes/pass.h"

namespace amp {

class FuseElementwise : public Pass {
 public:
  static constexpr std::string_view kName = "fuse-elementwise";
  explicit FuseElementwise(std::set<std::string, std::less<>> keep = {}) : keep_(std::move(keep)) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  std::set<std::string, std::less<>> keep_;  // values that must stay readable after the step
};

}  // namespace amp
