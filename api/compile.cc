// amp::Compile (amp/compile.h): the model loaded, compiled by the same
// function amp-compile calls (passes/compile.h), and serialized.
#include "amp/compile.h"

#include "compiler/loader.h"
#include "compiler/onnx_export.h"
#include "onnx/onnx_pb.h"
#include "passes/compile.h"

namespace amp {
namespace {

StatusOr<CompiledModel> Finish(StatusOr<Model> loaded, const CompileOptions& options) {
  if (!loaded.ok()) return loaded.status();
  Model& model = *loaded;
  AMP_ASSIGN_OR_RETURN(CompileResult compiled, CompileModel(model, options));
  ExportOptions eo;
  if (options.emit == "functional" || options.emit == "gradients")
    eo.training_form = TrainingForm::kFunctional;
  AMP_ASSIGN_OR_RETURN(onnx::ModelProto proto, ExportModelProto(model, eo));
  std::string bytes;
  if (!proto.SerializeToString(&bytes))
    return Internal("the compiled model could not be serialized (over 2 GiB?)");
  return CompiledModel(std::move(bytes), compiled.report.dump(2), std::move(compiled.log));
}

}  // namespace

Status CompiledModel::Save(const std::string& path) const {
  if (onnx_.empty()) return InvalidArgument("nothing to save: the CompiledModel is empty");
  return WriteFileAtomically(path, onnx_);
}

StatusOr<CompiledModel> Compile(const std::string& path, const CompileOptions& options) {
  AMP_RETURN_IF_ERROR(ValidateCompileOptions(options));
  return Finish(LoadModel(path), options);
}

StatusOr<CompiledModel> CompileBytes(const std::string& bytes, const CompileOptions& options) {
  AMP_RETURN_IF_ERROR(ValidateCompileOptions(options));
  return Finish(LoadModelBytes(bytes), options);
}

}  // namespace amp
