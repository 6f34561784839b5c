// fuse-conv-weight-grad: the weight gradient autodiff writes for a 2-D Conv
// with group 1 - a Conv of the transposed input with the transposed output
// gradient as its kernel (strides and dilations swapped), the positions a
// stride leaves out sliced off, the result transposed back - becomes one
// ai.amp ConvWeightGrad (cuDNN's backward-filter convolution):
//
//   xt = Transpose <perm = [1, 0, 2, 3]> (x)   dyt = Transpose <perm = [1, 0, 2, 3]> (dy)
//   r = Conv <strides = d, dilations = s, pads = p> (xt, dyt)   [r = Slice (r, [0, 0], [kh, kw],
//   [2, 3])] [r = Cast <to = 1> (r)]   dw = Transpose <perm = [1, 0, 2, 3]> (r)
//     =>  dw = ai.amp.ConvWeightGrad <kernel_shape = [kh, kw], strides = s, dilations = d, pads = p
//                                     [, out_type = 1]> (x, dy)
//
// one kernel instead of four or five, and no transposed copies of x and dy
// in memory. The values are the unfused ones, bit for bit on the CPU (the
// kernel runs the same im2col and GEMM). The transposes, the Conv and the
// Slice must have no other reader and not be graph outputs or values the
// step's description names.
#pragma once

#include <set>
#include <string>

#include "passes/pass.h"

namespace amp {

class FuseConvWeightGrad : public Pass {
 public:
  static constexpr std::string_view kName = "fuse-conv-weight-grad";
  explicit FuseConvWeightGrad(std::set<std::string, std::less<>> keep = {})
      : keep_(std::move(keep)) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  std::set<std::string, std::less<>> keep_;  // values that must stay readable after the step
};

}  // namespace amp
