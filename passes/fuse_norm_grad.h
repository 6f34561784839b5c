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
//
// Where the scale is trained, LayerNorm's whole backward (dxhat = dy *
// scale, NormalizeGrad, the scale's and bias's column sums, the residual's
// Sum) becomes one ai.amp LayerNormGrad; and a ReduceSum of its input
// gradient over all the rows - the gradient of a Linear's bias in front of
// the LayerNorm, read through Transposes that permute the rows and reshapes
// (RowSuffix in the .cc) - becomes its fourth output, dx's column sums:
//
//   dx, ds, db = ai.amp.LayerNormGrad(x, dy, s)  t = Transpose <perm = [1, 0, 2]> (dx)
//   bg = ReduceSum <keepdims = 1> (t, [0, 1])
//     =>  dx, ds, db, dxs = ai.amp.LayerNormGrad(x, dy, s)  bg = Reshape(dxs, [1, 1, n])
//
// Both sum each column in double and round once; through a Transpose the
// rows are summed in another order, so the FP32 sum may differ in its last
// bit where the two double sums round apart.
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
