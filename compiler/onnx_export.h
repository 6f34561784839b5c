// amp IR -> ONNX ModelProto / .onnx file.
#pragma once

#include <string>

#include "compiler/ir.h"
#include "compiler/status.h"

namespace onnx {
class ModelProto;
}

namespace amp {

struct ExportOptions {
  // Write value_info for every intermediate value whose type is known, so that
  // viewers (and the precision report) see the precision of each edge.
  bool value_info = true;
  // Tensors of at least this many bytes go to "<file>.data" beside the model;
  // 0 keeps everything inline. Files over 2 GiB need it.
  size_t external_data_threshold = 0;
};

// A training step (Model::training) is written in its functional form: every
// piece of state is also a graph input (its initializer is the starting
// value) and its update a graph output, so that any ONNX runtime can run one
// step; metadata_props "amp.training" (JSON) maps state to outputs.

StatusOr<onnx::ModelProto> ExportModelProto(const Model& model, const ExportOptions& options = {});
// Writes atomically (temporary file + rename).
Status SaveModelFile(const Model& model, const std::string& path,
                     const ExportOptions& options = {});

}  // namespace amp
