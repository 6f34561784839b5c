// infer-shapes: (re)computes the type and shape of every value
// (compiler/shape_inference.h's RunShapeInference, as a pass).
#pragma once

#include "passes/pass.h"

namespace amp {

class InferShapes : public Pass {
 public:
  static constexpr std::string_view kName = "infer-shapes";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
