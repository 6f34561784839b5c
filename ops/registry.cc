// The one list of op families (no static self-registration, which linkers
// drop), and lookup by domain and name.
#include <algorithm>
#include <map>
#include <utility>

#include "ops/families.h"

namespace amp {
namespace {

bool Contains(const std::vector<int>& v, int x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string_view Canonical(std::string_view domain) { return domain == "ai.onnx" ? "" : domain; }

}  // namespace

bool OpDef::IsShapeInput(int slot) const { return Contains(shape_inputs, slot); }
bool OpDef::IsFp32Input(int slot) const { return Contains(fp32_inputs, slot); }
bool OpDef::IsNonDifferentiableInput(int slot) const { return Contains(nondiff_inputs, slot); }

OpPrecision OpDef::PrecisionFor(DType half_type) const {
  if (half_type == DType::kBFloat16 && bf16_precision.reason) return bf16_precision;
  return precision;
}

const std::vector<OpDef>& AllOps() {
  static const std::vector<OpDef> all = [] {
    std::vector<OpDef> v;
    for (auto family : {ElementwiseOps, GemmOps, ConvOps, PoolOps, NormOps, LossOps, ReduceOps,
                        DataOps, ResizeOps, RnnOps, TrainingOps, FusedOps, AttentionOps})
      for (OpDef& d : family()) v.push_back(std::move(d));
    return v;
  }();
  return all;
}

const OpDef* FindOp(std::string_view domain, std::string_view op_type) {
  static const std::map<std::pair<std::string_view, std::string_view>, const OpDef*> index = [] {
    std::map<std::pair<std::string_view, std::string_view>, const OpDef*> m;
    for (const OpDef& d : AllOps()) m[{d.domain, d.op_type}] = &d;
    return m;
  }();
  auto it = index.find({Canonical(domain), op_type});
  return it == index.end() ? nullptr : it->second;
}

std::vector<std::string_view> SupportedOps() {
  std::vector<std::string_view> out;
  for (const OpDef& d : AllOps())
    if (d.domain.empty()) out.push_back(d.op_type);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace amp
