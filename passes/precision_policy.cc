#include "passes/precision_policy.h"

#include <nlohmann/json.hpp>

#include "compiler/tensor.h"
#include "ops/op_def.h"

namespace amp {

StatusOr<OptLevel> ParseOptLevel(const std::string& s) {
  if (s == "O0") return OptLevel::kO0;
  if (s == "O1") return OptLevel::kO1;
  if (s == "O2") return OptLevel::kO2;
  if (s == "O3") return OptLevel::kO3;
  return InvalidArgument("unknown opt level '", s, "' (O0, O1, O2 or O3)");
}

std::string OptLevelName(OptLevel level) { return StrCat("O", static_cast<int>(level)); }

StatusOr<DType> ParseHalfType(const std::string& s) {
  if (s == "fp16" || s == "float16") return DType::kFloat16;
  if (s == "bf16" || s == "bfloat16") return DType::kBFloat16;
  return InvalidArgument("unknown dtype '", s, "' (fp16 or bf16)");
}

Status PrecisionPolicy::MergeJsonFile(const std::string& path) {
  auto source = ReadRegularFile(path);
  if (!source.ok())
    return Status(source.status().code(),
                  StrCat("cannot open policy file: ", source.status().message()));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(*source);
  } catch (const std::exception& e) {
    return InvalidArgument("policy file '", path, "' is not valid JSON: ", e.what());
  }
  if (!j.is_object()) return InvalidArgument("policy file '", path, "' must hold a JSON object");
  try {
    for (const auto& [key, value] : j.items()) {
      if (key == "dtype") {
        AMP_ASSIGN_OR_RETURN(half_type, ParseHalfType(value.get<std::string>()));
      } else if (key == "opt_level") {
        AMP_ASSIGN_OR_RETURN(level, ParseOptLevel(value.get<std::string>()));
      } else if (key == "fp32_ops") {
        for (const auto& op : value) fp32_ops.insert(op.get<std::string>());
      } else if (key == "half_ops") {
        for (const auto& op : value) half_ops.insert(op.get<std::string>());
      } else if (key == "fp32_nodes") {
        fp32_nodes = value.get<std::string>();
        fp32_nodes_regex_.reset();
      } else if (key == "keep_batchnorm_fp32") {
        keep_batchnorm_fp32 = value.get<bool>();
      } else {
        return InvalidArgument(
            "policy file '", path, "': unknown key '", key,
            "' (dtype, opt_level, fp32_ops, half_ops, fp32_nodes, keep_batchnorm_fp32)");
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument("policy file '", path, "': a value has the wrong type: ", e.what());
  }
  return Validate().WithContext(StrCat("policy file '", path, "'"));
}

Status PrecisionPolicy::Validate() const {
  auto supported = SupportedOps();
  for (const auto* set : {&fp32_ops, &half_ops}) {
    for (const auto& op : *set) {
      if (std::find(supported.begin(), supported.end(), op) == supported.end())
        return InvalidArgument("unknown op '", op, "' in an op override list");
      if (set == &half_ops && fp32_ops.count(op))
        return InvalidArgument("op '", op, "' is in both the fp32 and the half override lists");
    }
  }
  if (!fp32_nodes.empty()) {
    try {
      fp32_nodes_regex_.emplace(fp32_nodes, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return InvalidArgument("--fp32-nodes '", fp32_nodes,
                             "' is not a valid regular expression: ", e.what());
    }
  }
  return Status::Ok();
}

bool PrecisionPolicy::MatchesFp32Node(const std::string& node_name,
                                      const std::vector<std::string>& output_names) const {
  if (fp32_nodes.empty()) return false;
  if (!fp32_nodes_regex_) fp32_nodes_regex_.emplace(fp32_nodes, std::regex::ECMAScript);
  if (!node_name.empty() && std::regex_search(node_name, *fp32_nodes_regex_)) return true;
  for (const auto& out : output_names)
    if (std::regex_search(out, *fp32_nodes_regex_)) return true;
  return false;
}

}  // namespace amp
