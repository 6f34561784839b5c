// expand-gradient: replaces each ai.onnx.preview.training Gradient node by
// the backward graph that computes it (autodiff's reverse sweep from `y`,
// seeded with ones of y's shape, to each value named in `xs`). A value that
// `y` does not depend on gets a zero gradient. The runtime runs this before
// it plans a model that uses Gradient.
#pragma once

#include "passes/pass.h"

namespace amp {

class ExpandGradient : public Pass {
 public:
  static constexpr std::string_view kName = "expand-gradient";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
