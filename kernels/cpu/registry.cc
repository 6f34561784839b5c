// The CPU kernel table: every family registers its ops here, in one explicit
// list (no static self-registration, which linkers drop).
#include "kernels/cpu/families.h"

namespace amp::cpu {
namespace {

const KernelTable& Table() {
  static const KernelTable table = [] {
    KernelTable t;
    RegisterElementwiseKernels(t);
    RegisterGemmKernels(t);
    RegisterConvKernels(t);
    RegisterPoolKernels(t);
    RegisterNormKernels(t);
    RegisterReduceKernels(t);
    RegisterLossKernels(t);
    RegisterDataKernels(t);
    RegisterOptimizerKernels(t);
    RegisterRnnKernels(t);
    RegisterResizeKernels(t);
    RegisterEinsumKernels(t);
    RegisterCollectiveKernels(t);
    RegisterFusedKernels(t);
    RegisterAttentionKernels(t);
    return t;
  }();
  return table;
}

}  // namespace

KernelFn FindKernel(const std::string& domain, const std::string& op_type) {
  std::string key = (domain.empty() || domain == "ai.onnx") ? op_type : domain + ":" + op_type;
  auto it = Table().find(key);
  return it == Table().end() ? nullptr : it->second;
}

std::vector<std::string> KernelOpNames() {
  std::vector<std::string> out;
  for (const auto& [name, fn] : Table()) out.push_back(name);
  return out;
}

}  // namespace amp::cpu
