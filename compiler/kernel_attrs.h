// What a kernel reads of its node: the op, the attributes (decoded from the
// IR once, when an Executable is made) and how to name the node in an error.
// Kernels see this, never the graph, so that running a step touches no IR.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "compiler/ir.h"

namespace amp {

class KernelAttrs {
 public:
  KernelAttrs() = default;
  explicit KernelAttrs(const Node& node);

  const std::string& op_type() const { return op_type_; }
  const std::string& domain() const { return domain_; }
  // "node 'name' (Op)", as Node::Describe said it when decoded.
  const std::string& Describe() const { return describe_; }

  const Attribute* FindAttr(std::string_view name) const;
  bool HasAttr(std::string_view name) const { return FindAttr(name) != nullptr; }
  // The attribute's value when present with that type, else `def`.
  int64_t GetInt(std::string_view name, int64_t def) const;
  float GetFloat(std::string_view name, float def) const;
  std::string GetString(std::string_view name, const std::string& def) const;
  std::vector<int64_t> GetInts(std::string_view name, std::vector<int64_t> def = {}) const;

 private:
  std::string op_type_, domain_, describe_;
  std::vector<std::pair<std::string, Attribute>> attrs_;  // sorted by name
};

}  // namespace amp
