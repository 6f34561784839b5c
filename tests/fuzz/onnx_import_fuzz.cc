// The ONNX importer (compiler/onnx_import.h) on arbitrary bytes, as a forward
// model and as a training step; a model that imports then goes where
// amp-compile takes it: shape inference and the verifier, and, for small
// forward models, the O1 precision pipeline (verified after every pass) and
// export. (Large models would spend seconds a run in the passes of this -O0
// sanitizer build, and the pipeline's own fuzzing is tests/python/
// mutation_test.py's.)
#include <cstddef>
#include <cstdint>

#include "compiler/onnx_export.h"
#include "compiler/onnx_import.h"
#include "compiler/shape_inference.h"
#include "compiler/verifier.h"
#include "onnx/onnx_pb.h"
#include "passes/pipelines.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (amp::TrainingInfoMode mode :
       {amp::TrainingInfoMode::kForward, amp::TrainingInfoMode::kStep}) {
    auto model = amp::ImportModelBytes(data, size, "", mode);
    if (!model.ok() || !amp::RunShapeInference(*model).ok() || !amp::VerifyModel(*model).ok())
      continue;
    if (mode != amp::TrainingInfoMode::kForward || model->graph->num_nodes() > 64) continue;
    amp::PassPipeline pipeline = amp::pipelines::ForLevel(amp::PrecisionPolicy{});
    if (!pipeline.Run(*model).ok()) continue;
    (void)amp::ExportModelProto(*model);
  }
  return 0;
}
