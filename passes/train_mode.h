// train-mode (amp-compile --train-mode): BatchNormalization written in its
// inference form (training_mode 0: the running statistics in place of the
// batch's), as the dynamo exporter writes it even for a module in train(),
// back in the form PyTorch trains: normalized by the batch's statistics, the
// running statistics updated as state (outputs 1 and 2, which the optimizer
// pass turns into state updates, as for a TorchScript training export).
//
//   before:  y = BatchNormalization <momentum = 0.9> (x, s, b, mean, var)
//   after:   y, mean_next, var_next =
//              BatchNormalization <momentum = 0.9, training_mode = 1> (x, s, b, mean, var)
//
// A BatchNorm the exporter folded into its Conv is gone from the graph; it
// cannot come back (CompileModel names the ones the exporter's graph
// signature still lists).
#pragma once

#include "passes/pass.h"

namespace amp {

class TrainMode : public Pass {
 public:
  static constexpr std::string_view kName = "train-mode";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
