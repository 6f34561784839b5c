// fold-shapes: replaces every node whose result is known at compile time by
// a Constant node holding it (see CompileTimeConstants): static shape data
// (a Shape, or the static dims gathered out of a partly symbolic one), and
// every op the constant evaluator knows whose inputs are all compile-time
// (Constant outputs, integer initializers, earlier results). This turns the
// exporters' Shape -> Gather -> Concat -> Reshape chains into constants once
// the batch size is known (see bind-dims).
//
// Float initializers are the model's trainable parameters and are never
// folded (folding Transpose(W) would freeze W). Dead producers are left for
// dce.
#pragma once

#include "passes/pass.h"

namespace amp {

class FoldShapes : public Pass {
 public:
  static constexpr std::string_view kName = "fold-shapes";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
