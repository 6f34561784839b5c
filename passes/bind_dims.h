// bind-dims: replaces symbolic input dims by numbers (`--bind-dim batch=16`)
// and re-infers, so that shape computations become static.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "passes/pass.h"

namespace amp {

class BindDims : public Pass {
 public:
  static constexpr std::string_view kName = "bind-dims";
  explicit BindDims(std::map<std::string, int64_t> bindings) : bindings_(std::move(bindings)) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  std::map<std::string, int64_t> bindings_;
};

}  // namespace amp
