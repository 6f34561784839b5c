// What the user asked for: target half type, optimization level, and
// per-op / per-node overrides (from flags or a JSON policy file).
#pragma once

#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "compiler/dtype.h"
#include "compiler/status.h"

namespace amp {

enum class OptLevel { kO0, kO1, kO2, kO3 };

struct PrecisionPolicy {
  DType half_type = DType::kFloat16;
  // O0: no change. O1: the op lists (default). O2: everything half except the
  // fp32 list. O3: pure half, for comparison only.
  OptLevel level = OptLevel::kO1;
  std::set<std::string> fp32_ops;  // --fp32-ops
  std::set<std::string> half_ops;  // --half-ops
  // --fp32-nodes: regex searched in node names and in their output names (so
  // that unnamed nodes can be picked too); "" = none.
  std::string fp32_nodes;
  bool keep_batchnorm_fp32 = false;

  // {"dtype": "bf16", "opt_level": "O2", "fp32_ops": ["Add"], "half_ops": [],
  //  "fp32_nodes": "^/head/", "keep_batchnorm_fp32": true}; fields override
  // this policy's.
  Status MergeJsonFile(const std::string& path);
  // Checks the regex and op names.
  Status Validate() const;
  bool MatchesFp32Node(const std::string& node_name,
                       const std::vector<std::string>& output_names) const;

 private:
  mutable std::optional<std::regex> fp32_nodes_regex_;
};

StatusOr<OptLevel> ParseOptLevel(const std::string& s);
std::string OptLevelName(OptLevel level);
StatusOr<DType> ParseHalfType(const std::string& s);

}  // namespace amp
