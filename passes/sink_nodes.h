// sink-nodes: a node moves down to just before its first reader, so that
// its output is not held in between, when the inputs that would then live
// longer (not those that live for the whole step - initializers, graph
// inputs, Constants' outputs - nor those read there or later anyway) take
// no more bytes than its outputs: no point of the step then holds more. The
// memory plan follows the node order, and autodiff's order computes some
// values long before the backward reads them: ResNet-18's MaxPool gradient
// starts from a [128,64,112,112] zero tensor made at the top of the step,
// and each convolution's weight gradient reads a transposed copy of its
// input made right after the forward computed that input:
//
//   z = ConstantOfShape (shape)   ... (the whole forward) ...   g = ScatterElements (z, i, u)
//     =>  ... (the whole forward) ...   z = ConstantOfShape (shape)   g = ScatterElements (z, i, u)
//   t = Transpose (a)  ... (forward and backward) ...  dw = Conv (t, dy)   (a as large as t)
//     =>  ... t = Transpose (a)  dw = Conv (t, dy)
//
// Then an update of a state that nothing reads, computed while later nodes
// still read that state (the optimizer's step count), moves to the end of
// the step, where it may write over the state instead of a copy after it:
//
//   n = FusedElementwise (step, found)  FusedAdam (lr, step, ...)
//     =>  FusedAdam (lr, step, ...)  n = FusedElementwise (step, found)
//
// Only nodes move; what each computes is unchanged. Constant nodes stay
// (they run once, when the step is loaded).
#pragma once

#include "passes/pass.h"

namespace amp {

class SinkNodes : public Pass {
 public:
  static constexpr std::string_view kName = "sink-nodes";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
