// dce: removes nodes none of whose outputs reach a graph output, and
// initializers nothing reads.
#pragma once

#include "passes/pass.h"

namespace amp {

class Dce : public Pass {
 public:
  static constexpr std::string_view kName = "dce";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
