// Reading a model the way every tool does: binary .onnx or ONNX text
// (by extension .onnxtxt/.txt, or content starting with '<'), then shape
// inference and the verifier.
#pragma once

#include <string>

#include "compiler/ir.h"
#include "compiler/onnx_import.h"
#include "compiler/status.h"

namespace amp {

// Parses without inference (for tools that want to show the raw import).
StatusOr<Model> ReadModel(const std::string& path,
                          TrainingInfoMode mode = TrainingInfoMode::kRefuse);
// ReadModel + RunShapeInference + VerifyModel.
StatusOr<Model> LoadModel(const std::string& path,
                          TrainingInfoMode mode = TrainingInfoMode::kRefuse);
// Same for ONNX text held in memory.
StatusOr<Model> LoadModelText(const std::string& text);
// A serialized ModelProto, or ONNX text (starting with '<'), held in memory;
// no external data.
StatusOr<Model> LoadModelBytes(const std::string& bytes,
                               TrainingInfoMode mode = TrainingInfoMode::kRefuse);

}  // namespace amp
