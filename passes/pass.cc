#include "passes/pass.h"

#include <iostream>

#include "compiler/text.h"
#include "compiler/verifier.h"

namespace amp {

PinnedValues::PinnedValues(const Model& model, const std::set<std::string, std::less<>>& keep)
    : named_(model.training.NamedValues()), keep_(keep) {}

bool PinnedValues::operator()(const Value* v) const {
  return v->is_graph_output() || named_.count(v->name()) || keep_.count(v->name());
}

StatusOr<bool> PassPipeline::Run(Model& model) {
  AMP_RETURN_IF_ERROR(VerifyModel(model).WithContext("the input does not verify"));
  bool changed = false;
  std::ostream& out = debug_.out ? *debug_.out : std::cerr;
  for (auto& pass : passes_) {
    if (debug_.disabled.count(pass->name())) continue;
    auto result = pass->Run(model);
    if (!result.ok()) return result.status().WithContext(StrCat("pass '", pass->name(), "'"));
    changed |= *result;
    AMP_RETURN_IF_ERROR(VerifyModel(model).WithContext(
        StrCat("after pass '", pass->name(), "' the IR does not verify")));
    if (debug_.print_after.count(pass->name()) || debug_.print_after.count("all"))
      out << "// ----- IR after pass '" << pass->name() << "'" << (*result ? "" : " (unchanged)")
          << "\n"
          << PrintModel(model);
  }
  return changed;
}

void PassPipeline::Append(PassPipeline other) {
  for (auto& p : other.passes_) passes_.push_back(std::move(p));
}

std::string PassPipeline::Describe() const {
  std::string out;
  for (const auto& p : passes_) out += StrCat(out.empty() ? "" : ",", p->name());
  return out;
}

}  // namespace amp
