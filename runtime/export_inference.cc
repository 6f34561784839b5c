#include "runtime/export_inference.h"

#include "compiler/onnx_export.h"

namespace amp {

Status ExportInference(const Executor& trained, Model forward, const std::string& path) {
  for (const std::string& name : trained.StateNames()) {
    Value* v = forward.graph->FindValue(name);
    if (!v || !v->has_initializer()) continue;
    AMP_ASSIGN_OR_RETURN(Tensor t, trained.Fetch(name));
    forward.graph->SetInitializerData(v, std::move(t));
  }
  forward.metadata.erase("amp.training");
  forward.metadata.erase("amp.lr");
  forward.training = TrainingInfo{};
  return SaveModelFile(forward, path);
}

}  // namespace amp
