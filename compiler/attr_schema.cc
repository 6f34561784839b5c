#include "compiler/attr_schema.h"

#include <algorithm>
#include <map>
#include <utility>

namespace amp {
namespace {

struct RawSchema {
  std::string_view domain;
  std::string_view op;
  int since_version;
  std::string_view attrs;   // "name:code[!],..."
  std::string_view inputs;  // one letter per formal input: s, o (optional), v (variadic)
  std::string_view types;   // per formal input, a hex mask of allowed element types
};

constexpr RawSchema kRaw[] = {
#include "compiler/attr_schema.inc"
    // amp's own fused ops (passes/fuse_optimizer.cc, passes/fuse_unscale.cc).
    {"ai.amp", "FusedAdam", 1, "beta1:f,beta2:f,decoupled:i,eps:f,weight_decay:f", "ssov", ""},
    {"ai.amp", "UnscaleCheck", 1, "", "sv", ""},
};

AttrType TypeFromCode(std::string_view code) {
  static const std::map<std::string_view, AttrType> kCodes = {
      {"f", AttrType::kFloat},         {"i", AttrType::kInt},
      {"s", AttrType::kString},        {"t", AttrType::kTensor},
      {"g", AttrType::kGraph},         {"fs", AttrType::kFloats},
      {"is", AttrType::kInts},         {"ss", AttrType::kStrings},
      {"ts", AttrType::kTensors},      {"gs", AttrType::kGraphs},
      {"st", AttrType::kSparseTensor}, {"sts", AttrType::kSparseTensors},
      {"tp", AttrType::kTypeProto},    {"tps", AttrType::kTypeProtos},
  };
  auto it = kCodes.find(code);
  AMP_CHECK(it != kCodes.end());
  return it->second;
}

std::string_view NormalDomain(std::string_view d) { return d == "ai.onnx" ? "" : d; }

// Parsed once: (domain, op) -> versions, oldest first.
const std::map<std::pair<std::string_view, std::string_view>, std::vector<OpAttrSchema>>& Table() {
  static const auto* table = [] {
    auto* t =
        new std::map<std::pair<std::string_view, std::string_view>, std::vector<OpAttrSchema>>;
    for (const RawSchema& r : kRaw) {
      OpAttrSchema s{r.domain, r.op, r.since_version, {}, r.inputs, {}};
      for (std::string_view rest = r.types; !rest.empty();) {
        size_t comma = rest.find(',');
        std::string hex(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        s.input_types.push_back(static_cast<uint32_t>(std::stoul(hex, nullptr, 16)));
      }
      std::string_view rest = r.attrs;
      while (!rest.empty()) {
        size_t comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        size_t colon = item.find(':');
        AMP_CHECK(colon != std::string_view::npos);
        std::string_view code = item.substr(colon + 1);
        bool required = !code.empty() && code.back() == '!';
        if (required) code.remove_suffix(1);
        s.attrs.push_back({std::string(item.substr(0, colon)), TypeFromCode(code), required});
      }
      (*t)[{r.domain, r.op}].push_back(std::move(s));
    }
    for (auto& [key, versions] : *t)
      std::sort(versions.begin(), versions.end(), [](const OpAttrSchema& a, const OpAttrSchema& b) {
        return a.since_version < b.since_version;
      });
    return t;
  }();
  return *table;
}

// ---- the values the spec allows ----

bool OneOf(const std::string& v, std::initializer_list<std::string_view> allowed) {
  return std::find(allowed.begin(), allowed.end(), v) != allowed.end();
}

std::string Join(std::initializer_list<std::string_view> allowed) {
  std::string out;
  for (std::string_view a : allowed) {
    if (!out.empty()) out += ", ";
    out += a;
  }
  return out;
}

struct StringRule {
  std::string_view op;  // empty: any op
  std::string_view attr;
  std::initializer_list<std::string_view> allowed;
};

const StringRule kStringRules[] = {
    {"", "auto_pad", {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}},  // "" is NOTSET (import)
    {"Pad", "mode", {"constant", "reflect", "edge", "wrap"}},
    {"Resize", "mode", {"nearest", "linear", "cubic"}},
    {"Resize",
     "coordinate_transformation_mode",
     // tf_half_pixel_for_nn left the spec at opset 13, but onnx's version
     // converter keeps it when it upgrades opset-11 models, onnxruntime runs
     // it, and so does amp's kernel.
     {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
      "tf_crop_and_resize", "tf_half_pixel_for_nn"}},
    {"Resize", "nearest_mode", {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}},
    {"Resize", "keep_aspect_ratio_policy", {"stretch", "not_larger", "not_smaller"}},
    {"DepthToSpace", "mode", {"DCR", "CRD"}},
    {"ScatterElements", "reduction", {"none", "add", "mul", "max", "min"}},
    {"ScatterND", "reduction", {"none", "add", "mul", "max", "min"}},
    {"SoftmaxCrossEntropyLoss", "reduction", {"none", "sum", "mean"}},
    {"NegativeLogLikelihoodLoss", "reduction", {"none", "sum", "mean"}},
    {"Gelu", "approximate", {"none", "tanh"}},
    {"RNN", "direction", {"forward", "reverse", "bidirectional"}},
    {"GRU", "direction", {"forward", "reverse", "bidirectional"}},
    {"LSTM", "direction", {"forward", "reverse", "bidirectional"}},
    {"Momentum", "mode", {"standard", "nesterov"}},
};

// INT attributes that are flags: 0 or 1.
constexpr std::string_view kFlags[] = {
    "allowzero",
    "antialias",
    "ceil_mode",
    "count_include_pad",
    "decoupled",
    "detect_negative",
    "detect_positive",
    "exclude_outside",
    "exclusive",
    "fmod",
    "input_forget",
    "keepdims",
    "largest",
    "layout",
    "linear_before_reset",
    "noop_with_empty_axes",
    "reverse",
    "saturate",
    "select_last_index",
    "sorted",
    "storage_order",
    "training_mode",
    "transA",
    "transB",
    "upper",
};

// INTS attributes whose elements must be positive, and those that must not
// be negative, on the ops that have them as attributes.
constexpr std::string_view kPositiveInts[] = {"strides", "dilations", "kernel_shape"};
constexpr std::string_view kNonNegativeInts[] = {"pads", "output_padding"};

bool Contains(std::span<const std::string_view> list, std::string_view s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

}  // namespace

std::string_view AttrTypeName(AttrType t) {
  switch (t) {
    case AttrType::kUndefined:
      return "UNDEFINED";
    case AttrType::kFloat:
      return "FLOAT";
    case AttrType::kInt:
      return "INT";
    case AttrType::kString:
      return "STRING";
    case AttrType::kTensor:
      return "TENSOR";
    case AttrType::kGraph:
      return "GRAPH";
    case AttrType::kFloats:
      return "FLOATS";
    case AttrType::kInts:
      return "INTS";
    case AttrType::kStrings:
      return "STRINGS";
    case AttrType::kTensors:
      return "TENSORS";
    case AttrType::kGraphs:
      return "GRAPHS";
    case AttrType::kSparseTensor:
      return "SPARSE_TENSOR";
    case AttrType::kSparseTensors:
      return "SPARSE_TENSORS";
    case AttrType::kTypeProto:
      return "TYPE_PROTO";
    case AttrType::kTypeProtos:
      return "TYPE_PROTOS";
  }
  return "an unknown type";
}

const AttrSpec* OpAttrSchema::Find(std::string_view name) const {
  for (const AttrSpec& a : attrs)
    if (a.name == name) return &a;
  return nullptr;
}

uint32_t OpAttrSchema::InputTypes(size_t i) const {
  if (i < input_types.size()) return input_types[i];
  bool variadic = !inputs.empty() && inputs.back() == 'v';
  return variadic && !input_types.empty() ? input_types.back() : 0;
}

bool OpAttrSchema::InputRequired(size_t i) const {
  if (i < inputs.size()) return inputs[i] != 'o';
  return !inputs.empty() && inputs.back() == 'v';  // more of a variadic input
}

AttrSchemaLookup FindAttrSchema(std::string_view domain, std::string_view op, int64_t opset) {
  AttrSchemaLookup out;
  auto it = Table().find({NormalDomain(domain), op});
  if (it == Table().end()) return out;
  for (const OpAttrSchema& s : it->second)
    if (s.since_version <= opset) out.schema = &s;
  if (!out.schema) out.first_since = it->second.front().since_version;
  return out;
}

Status CheckAttributeValues(const Node& node) {
  for (const auto& [name, a] : node.attributes()) {
    auto bad = [&, &name = name](const auto&... what) {  // clang 14: no binding captures
      return InvalidArgument(node.Describe(), ": attribute '", name, "' ", what...);
    };
    if (a.kind == Attribute::Kind::kString) {
      for (const StringRule& r : kStringRules) {
        if ((!r.op.empty() && r.op != node.op_type()) || r.attr != name) continue;
        if (!OneOf(a.s, r.allowed)) return bad("is '", a.s, "'; ONNX allows ", Join(r.allowed));
      }
    } else if (a.kind == Attribute::Kind::kInt) {
      if (Contains(kFlags, name) && a.i != 0 && a.i != 1)
        return bad("is ", a.i, "; it must be 0 or 1");
      if (name == "group" && a.i < 1) return bad("is ", a.i, "; it must be at least 1");
      if (name == "blocksize" && a.i < 1) return bad("is ", a.i, "; it must be at least 1");
    } else if (a.kind == Attribute::Kind::kInts) {
      for (int64_t v : a.ints) {
        if (Contains(kPositiveInts, name) && v < 1)
          return bad("holds ", v, "; every element must be positive");
        if (Contains(kNonNegativeInts, name) && v < 0)
          return bad("holds ", v, "; every element must be 0 or more");
      }
    }
  }
  return Status::Ok();
}

}  // namespace amp
