#include "compiler/loader.h"

#include "compiler/legalize.h"
#include "compiler/onnx_import.h"
#include "compiler/shape_inference.h"
#include "compiler/text.h"
#include "compiler/verifier.h"

namespace amp {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Status Finish(Model& m) {
  AMP_RETURN_IF_ERROR(LegalizeImport(m));
  AMP_RETURN_IF_ERROR(RunShapeInference(m));
  AMP_RETURN_IF_ERROR(LegalizeTyped(m));
  return VerifyModel(m);
}

}  // namespace

StatusOr<Model> ReadModel(const std::string& path, TrainingInfoMode mode) {
  bool text = EndsWith(path, ".onnxtxt") || EndsWith(path, ".txt");
  if (!text) {
    // Opened once to look at the first byte; refuses FIFOs and devices.
    AMP_ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
    text = file->size() > 0 && file->data()[0] == '<';
  }
  if (!text) return ImportModelFile(path, mode);
  AMP_ASSIGN_OR_RETURN(std::string source, ReadRegularFile(path));
  auto m = ParseModelText(source);
  if (!m.ok()) return m.status().WithContext(StrCat("'", path, "'"));
  return m;
}

StatusOr<Model> LoadModel(const std::string& path, TrainingInfoMode mode) {
  AMP_ASSIGN_OR_RETURN(Model m, ReadModel(path, mode));
  AMP_RETURN_IF_ERROR(Finish(m).WithContext(StrCat("'", path, "'")));
  return m;
}

StatusOr<Model> LoadModelText(const std::string& text) {
  AMP_ASSIGN_OR_RETURN(Model m, ParseModelText(text));
  AMP_RETURN_IF_ERROR(Finish(m));
  return m;
}

StatusOr<Model> LoadModelBytes(const std::string& bytes, TrainingInfoMode mode) {
  size_t first = bytes.find_first_not_of(" \t\r\n");
  bool text = first != std::string::npos && bytes[first] == '<';
  StatusOr<Model> m =
      text ? ParseModelText(bytes) : ImportModelBytes(bytes.data(), bytes.size(), "", mode);
  if (!m.ok()) return m.status();
  AMP_RETURN_IF_ERROR(Finish(*m));
  return m;
}

}  // namespace amp
