// rematerialize: an elementwise value the backward reads long after the
// forward made it (GELU's x/sqrt(2), 1 + erf(...) and x/2, kept for their
// Mul gradients) is recomputed where it is read, from values that are live
// there anyway, instead of being kept alive in between (XLA's
// HloRematerialization, for the cheap case):
//
//   d = Div (x, c)   ... (many nodes) ...   g = Mul (dy, d)
//     =>  d = Div (x, c)  ...  d' = Div (x, c)  g = Mul (dy, d')
//
// A recomputation reads only constants, inputs, and values whose last reader
// comes at, after or shortly before the new place (it keeps nothing alive
// more than `distance` nodes longer, against a value it frees for more than
// `distance`), through a
// chain of at most three elementwise ops, for a reader that is itself
// elementwise of the same shape, so that fuse-elementwise folds the copies
// into the reader's fused kernel (no launch added). The copies compute the
// same ops on the same values: the results are the same bit for bit.
// Specialization runs it before fuse-elementwise.
#pragma once

#include <cstddef>

#include "passes/pass.h"

namespace amp {

class Rematerialize : public Pass {
 public:
  static constexpr std::string_view kName = "rematerialize";
  // A reader counts as distant when more than `distance` nodes separate it
  // from the value's producer.
  explicit Rematerialize(size_t distance = 24) : distance_(distance) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  size_t distance_;
};

}  // namespace amp
