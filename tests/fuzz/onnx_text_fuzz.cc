// The ONNX-text parser (compiler/text.h) on arbitrary text, and what every
// tool does with a model that parses (compiler/loader.h): shape inference and
// the verifier; then printing it back.
#include <cstddef>
#include <cstdint>
#include <string>

#include "compiler/loader.h"
#include "compiler/text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto model = amp::LoadModelText(text);  // ParseModelText + RunShapeInference + VerifyModel
  if (model.ok()) (void)amp::PrintModel(*model);
  return 0;
}
