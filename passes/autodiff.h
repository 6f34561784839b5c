// autodiff: reverse-mode gradients of the training loss (attach-loss) with
// respect to every trainable parameter: every float initializer except those
// matched by --freeze and BatchNormalization's running statistics. Built on
// the IR from each op's rule (grad_rules.cc), pruned to what reaches a
// parameter, summing gradients where a value fans out, reducing gradients of
// broadcast inputs, and reusing forward values. A node on a parameter's path
// whose op has no rule is an error naming the node and the op.
#pragma once

#include <string>

#include "passes/pass.h"

namespace amp {

// The reverse sweep itself: the gradients of `y`, starting from `seed` (its
// gradient, same shape), with respect to each value of `wrt` (null where y
// does not depend on it). New nodes are appended; call TopologicalSort after.
StatusOr<std::vector<Value*>> BuildGradients(Model& model, Value* y, Value* seed,
                                             const std::vector<Value*>& wrt);

class Autodiff : public Pass {
 public:
  static constexpr std::string_view kName = "autodiff";
  // freeze: parameters whose names match are not trained; trainable: only
  // parameters whose names match are (both ECMAScript regexes, "" = off; one
  // that matches no float initializer is an error).
  explicit Autodiff(std::string freeze_regex = "", std::string trainable_regex = "")
      : freeze_(std::move(freeze_regex)), trainable_(std::move(trainable_regex)) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  std::string freeze_;
  std::string trainable_;
};

}  // namespace amp
