// amp IR -> ONNX ModelProto / .onnx file.
#pragma once

#include <string>

#include "compiler/ir.h"
#include "compiler/status.h"

namespace onnx {
class ModelProto;
}

namespace amp {

enum class TrainingForm {
  kTrainingInfo,  // main graph = forward model, training_info = the step (ONNX's own form)
  kFunctional,    // one graph: state in as inputs, updated state out as outputs
};

struct ExportOptions {
  TrainingForm training_form = TrainingForm::kTrainingInfo;
  // Write value_info for every intermediate value whose type is known, so that
  // viewers (and the precision report) see the precision of each edge.
  bool value_info = true;
  // Tensors of at least this many bytes go to "<file>.data" beside the model;
  // 0 keeps everything inline. Files over 2 GiB need it.
  size_t external_data_threshold = 0;
};

// A training step (Model::training) is written in ONNX's training form by
// default: the main graph is the forward model and training_info holds the
// step, with an update_binding per piece of state. The functional form makes
// every piece of state also a graph input (its initializer is the starting
// value) and its update a graph output, so that any ONNX runtime can run one
// step. Both carry metadata_props "amp.training" (JSON: loss, state -> update).

StatusOr<onnx::ModelProto> ExportModelProto(const Model& model, const ExportOptions& options = {});
// Writes atomically (temporary file + rename).
Status SaveModelFile(const Model& model, const std::string& path,
                     const ExportOptions& options = {});
// `bytes` to `path` through a temporary file and a rename: a failed write
// leaves what was there.
Status WriteFileAtomically(const std::string& path, const std::string& bytes);
// Whether `path` exists and is neither a regular file nor a folder (a
// device, a FIFO, a socket): written in place, never replaced by a rename.
bool IsSpecialFile(const std::string& path);

}  // namespace amp
