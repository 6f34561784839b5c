// The trained inference model: the forward graph of a compiled step with the
// values a training Executor holds now (its parameters; buffers such as
// BatchNorm's running statistics), and no training description, written as
// ONNX that any runtime can run.
#pragma once

#include <string>

#include "compiler/ir.h"
#include "compiler/status.h"
#include "runtime/executor.h"

namespace amp {

// `forward` is the step's model imported with TrainingInfoMode::kForward.
Status ExportInference(const Executor& trained, Model forward, const std::string& path);

}  // namespace amp
