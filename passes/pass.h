// The pass interface and the pipeline that runs passes with the verifier
// around each one (as XLA's HloPassPipeline does).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <set>
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

// The values a fusion must leave readable after the step: graph outputs,
// every value the step's description names, and the caller's `keep`
// (amp-compile --keep). Built once per pass run.
class PinnedValues {
 public:
  PinnedValues(const Model& model, const std::set<std::string, std::less<>>& keep);
  bool operator()(const Value* v) const;
  // Read by one node and not pinned: a value a fusion may fold away.
  bool Private(const Value* v) const { return v->uses().size() == 1 && !(*this)(v); }

 private:
  std::set<std::string> named_;
  const std::set<std::string, std::less<>>& keep_;
};

// Debugging a pipeline, as MLIR's --mlir-print-ir-after and XLA's
// --xla_disable_hlo_passes do: print the IR after some passes, skip others.
struct PipelineDebug {
  std::set<std::string, std::less<>> print_after;  // pass names, or "all"
  std::set<std::string, std::less<>> disabled;     // pass names not to run
  std::ostream* out = nullptr;                     // where to print (default std::cerr)
};

class PassPipeline {
 public:
  void Add(std::unique_ptr<Pass> pass) { passes_.push_back(std::move(pass)); }
  // Appends `other`'s passes after this one's.
  void Append(PassPipeline other);
  bool empty() const { return passes_.empty(); }
  // The pass names, in order ("bind-dims,fold-shapes,dce").
  std::string Describe() const;
  void set_debug(PipelineDebug debug) { debug_ = std::move(debug); }
  // Verifies, then runs each pass and verifies again; an error names the pass
  // that broke the IR. True if any pass changed the model.
  StatusOr<bool> Run(Model& model);

 private:
  std::vector<std::unique_ptr<Pass>> passes_;
  PipelineDebug debug_;
};

}  // namespace amp
