// fuse-norm-grad: the backward of LayerNormalization and of training-mode
// BatchNormalization as autodiff writes it (ops/norm.cc's NormalizeBackward
// over the normalized axes, trailing for LayerNorm, all but the channel for
// BatchNorm: the mean and the variance recomputed from x, then dx from
// dxhat = dy * scale) becomes one
// ai.amp NormalizeGrad node, a kernel that reads each row of x and dxhat
// and writes dx (and xhat where the scale's gradient reads it): one launch
// and two reads instead of four reductions and their elementwise chains.
//
//   mean = ReduceMean(x)  xc = Sub(x, mean)  var = ReduceMean(Mul(xc, xc))
//   invstd = Reciprocal(Sqrt(Add(var, eps)))  xhat = Mul(xc, invstd)
//   m1 = ReduceMean(dxhat)  m2 = ReduceMean(Mul(dxhat, xhat))
//   dx = Mul(invstd, Sub(Sub(dxhat, m1), Mul(xhat, m2)))
//     =>  dx, xhat = ai.amp.NormalizeGrad <axes = [...], epsilon = eps> (x, dxhat)
//
// The kernel rounds where the unfused FP32 ops round (sums in double, each
// op's result in FP32), so on the CPU dx and xhat are the unfused values bit
// for bit. Only FP32 chains whose intermediates nothing else reads are
// fused (xhat may be read: it becomes the second output).
#pragma once

#include "passes/pass.h"

namespace amp {

class FuseNormGrad : public Pass {
 public:
  static constexpr std::string_view kName = "fuse-norm-grad";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
