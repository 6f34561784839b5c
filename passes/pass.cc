#include "passes/pass.h"

#include "compiler/verifier.h"

namespace amp {

StatusOr<bool> PassPipeline::Run(Model& model) {
  AMP_RETURN_IF_ERROR(VerifyModel(model).WithContext("the input does not verify"));
  bool changed = false;
  for (auto& pass : passes_) {
    auto result = pass->Run(model);
    if (!result.ok()) return result.status().WithContext(StrCat("pass '", pass->name(), "'"));
    changed |= *result;
    AMP_RETURN_IF_ERROR(VerifyModel(model).WithContext(
        StrCat("after pass '", pass->name(), "' the IR does not verify")));
  }
  return changed;
}

}  // namespace amp
