// elide-dropout: a Dropout that drops nothing (its ratio a constant 0, or
// its training_mode absent or a constant false) is the identity: its readers
// read its input, and the node and its buffers go. PyTorch exports
// nn.Dropout(p=0.0) (Hugging Face configs, the benchmark Transformer) as
// exactly such a node, in training mode. A Dropout whose mask is read, or
// whose output is a graph output or named by the step, stays.
//
//   y, mask = Dropout (x, 0.0, true)   =>   (readers of y read x)
#pragma once

#include "passes/pass.h"

namespace amp {

class ElideDropout : public Pass {
 public:
  static constexpr std::string_view kName = "elide-dropout";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
