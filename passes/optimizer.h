// optimizer: adds the parameter update to the training step, with PyTorch's
// formulas and hyperparameters, on FP32 state: SGD (momentum, dampening,
// nesterov, weight decay), Adam (L2 weight decay) and AdamW (decoupled),
// both with bias correction by step. The learning rate is a graph input
// (`lr`, a float scalar) so that a schedule can change it every step. Every
// piece of state (parameters, moments, the step count, BatchNorm running
// statistics) is an initializer with an update value, recorded in
// Model::training.updates; the step's outputs are the loss and the updates.
#pragma once

#include <string>

#include "passes/pass.h"

namespace amp {

struct OptimizerOptions {
  std::string kind = "sgd";  // sgd, adam, adamw
  // Recorded as the default of the lr input. NaN: PyTorch's default for the
  // kind (torch.optim's Adam and AdamW: 1e-3); SGD has none, so NaN is an
  // error for it, as torch.optim.SGD without lr is.
  float lr = 0.01f;
  float momentum = 0.0f;
  float dampening = 0.0f;
  bool nesterov = false;
  float weight_decay = 0.0f;
  float beta1 = 0.9f, beta2 = 0.999f;
  float eps = 1e-8f;
};

class Optimizer : public Pass {
 public:
  static constexpr std::string_view kName = "optimizer";
  explicit Optimizer(OptimizerOptions options) : options_(std::move(options)) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  OptimizerOptions options_;
};

}  // namespace amp
