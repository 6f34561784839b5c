// ONNX ModelProto -> amp IR.
//
// Accepts IR versions 7..11 and default-domain opsets 13..kMaxOpset from both
// PyTorch exporters. Only the structure is imported here; types and shapes of
// intermediate values come from RunShapeInference (shape_inference.h). Every
// malformed input is an error Status naming the problem, never a crash.
#pragma once

#include <string>

#include "compiler/ir.h"
#include "compiler/status.h"

namespace onnx {
class ModelProto;
}

namespace amp {

inline constexpr int64_t kMinOpset = 13;
inline constexpr int64_t kMaxOpset = 25;
inline constexpr int64_t kMinIrVersion = 7;
inline constexpr int64_t kMaxIrVersion = 11;

// What to do with a model that has training_info (a training step written by
// amp-compile, or any ONNX training model).
enum class TrainingInfoMode {
  kRefuse,   // an error: the compiler takes forward models
  kForward,  // import the main graph (the forward model) and ignore the step
  kStep,     // import training_info[0]'s algorithm as the graph, with the main
             // graph's initializers and Model::training from the bindings
  kAuto,     // kStep when the model has training_info, else kForward
};

// Reads a binary .onnx file. External data is resolved relative to the file's
// folder and must stay inside it.
StatusOr<Model> ImportModelFile(const std::string& path,
                                TrainingInfoMode mode = TrainingInfoMode::kRefuse);
// Parses serialized bytes; `directory` is the external-data root ("" = none allowed).
StatusOr<Model> ImportModelBytes(const void* data, size_t size, const std::string& directory,
                                 TrainingInfoMode mode = TrainingInfoMode::kRefuse);
// One serialized TensorProto (an ONNX test's input_0.pb), inline data only.
StatusOr<Tensor> ImportTensorBytes(const void* data, size_t size, const std::string& what);
StatusOr<Model> ImportModelProto(const onnx::ModelProto& proto, const std::string& directory,
                                 TrainingInfoMode mode = TrainingInfoMode::kRefuse);

}  // namespace amp
