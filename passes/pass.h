// The pass interface and the pipeline that runs passes with the verifier
// around each one (as XLA's HloPassPipeline does).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/ir.h"
#include "compiler/status.h"

namespace amp {

class Pass {
 public:
  virtual ~Pass() = default;
  virtual std::string_view name() const = 0;
  // Rewrites the model; true if anything changed.
  virtual StatusOr<bool> Run(Model& model) = 0;
};

class PassPipeline {
 public:
  void Add(std::unique_ptr<Pass> pass) { passes_.push_back(std::move(pass)); }
  bool empty() const { return passes_.empty(); }
  // Verifies, then runs each pass and verifies again; an error names the pass
  // that broke the IR. True if any pass changed the model.
  StatusOr<bool> Run(Model& model);

 private:
  std::vector<std::unique_ptr<Pass>> passes_;
};

}  // namespace amp
