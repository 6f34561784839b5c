// attach-loss: turns a forward model into one whose only output is a scalar
// training loss. `--loss cross_entropy|mse|bce_with_logits|l1` applies the
// loss to the model output named by `--output` (default: the only output),
// against a new graph input `--label` (int64 class indices for
// cross_entropy, the output's shape and type otherwise). A model whose output
// is already a scalar loss is used as it is (`--loss model`).
#pragma once

#include <string>

#include "passes/pass.h"

namespace amp {

struct LossOptions {
  std::string kind = "cross_entropy";  // cross_entropy, mse, bce_with_logits, l1, model
  std::string label = "labels";
  std::string output;  // "" = the model's only output
  DType label_type = DType::kInt64;
  // Dropout in training mode draws from a seeded RNG: each Dropout without a
  // seed gets seed + its position, so a compiled step's masks are reproducible.
  int64_t seed = 0;
};

class AttachLoss : public Pass {
 public:
  static constexpr std::string_view kName = "attach-loss";
  explicit AttachLoss(LossOptions options) : options_(std::move(options)) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  LossOptions options_;
};

}  // namespace amp
