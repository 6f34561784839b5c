// What amp-compile does, as one function for every front end: the CLI, the
// public amp::Compile (api/compile.cc) and the Python package. It takes the
// public CompileOptions (amp/compile.h), checks them, builds the pipeline
// (lower, bind dims, the training step, the precision passes for the level)
// and runs it, returning the precision report.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "amp/compile.h"
#include "compiler/ir.h"
#include "compiler/status.h"
#include "passes/pass.h"
#include "passes/precision_policy.h"

namespace amp {

struct CompileResult {
  nlohmann::json report;  // BuildPrecisionReport's
  std::string log;        // one line per stage ("after <pipeline>: ...", the summary)
};

// The precision policy the options ask for (the policy file read last).
StatusOr<PrecisionPolicy> PolicyFor(const CompileOptions& options);
// Every option checked without a model: a bad one costs nothing.
Status ValidateCompileOptions(const CompileOptions& options);
// Compiles `model` in place.
StatusOr<CompileResult> CompileModel(Model& model, const CompileOptions& options,
                                     const PipelineDebug& debug = {});
// "N nodes (Op xK, ...), M initializers with E elements, opset V".
std::string ModelSummary(const Model& model);

}  // namespace amp
