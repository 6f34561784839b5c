// sink-sources: a node that reads only what lives for the whole step
// (initializers, graph inputs, Constant nodes' outputs) - a ConstantOfShape,
// a Range, a Cast of a weight - is moved to just before its first reader, so
// that its output is not held from the start of the step. The memory plan
// follows the node order; ResNet-18's MaxPool gradient starts from a
// [128,64,112,112] zero tensor that autodiff's order made at the top of the
// step and kept alive through the whole forward and backward:
//
//   z = ConstantOfShape (shape)   ... (the whole forward) ...   g = ScatterElements (z, i, u)
//     =>  ... (the whole forward) ...   z = ConstantOfShape (shape)   g = ScatterElements (z, i, u)
//
// Only the node moves; what it computes is unchanged. Constant nodes stay
// (they run once, when the step is loaded).
#pragma once

#include "passes/pass.h"

namespace amp {

class SinkSources : public Pass {
 public:
  static constexpr std::string_view kName = "sink-sources";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
