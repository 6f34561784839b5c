#include "compiler/kernel_attrs.h"

#include <algorithm>

namespace amp {

KernelAttrs::KernelAttrs(const Node& node)
    : op_type_(node.op_type()), domain_(node.domain()), describe_(node.Describe()) {
  attrs_.assign(node.attributes().begin(), node.attributes().end());  // a std::map: sorted
}

const Attribute* KernelAttrs::FindAttr(std::string_view name) const {
  auto it = std::lower_bound(attrs_.begin(), attrs_.end(), name,
                             [](const auto& a, std::string_view n) { return a.first < n; });
  return it != attrs_.end() && it->first == name ? &it->second : nullptr;
}

int64_t KernelAttrs::GetInt(std::string_view name, int64_t def) const {
  const Attribute* a = FindAttr(name);
  return a && a->kind == Attribute::Kind::kInt ? a->i : def;
}

float KernelAttrs::GetFloat(std::string_view name, float def) const {
  const Attribute* a = FindAttr(name);
  return a && a->kind == Attribute::Kind::kFloat ? a->f : def;
}

std::string KernelAttrs::GetString(std::string_view name, const std::string& def) const {
  const Attribute* a = FindAttr(name);
  return a && a->kind == Attribute::Kind::kString ? a->s : def;
}

std::vector<int64_t> KernelAttrs::GetInts(std::string_view name, std::vector<int64_t> def) const {
  const Attribute* a = FindAttr(name);
  return a && a->kind == Attribute::Kind::kInts ? a->ints : def;
}

}  // namespace amp
