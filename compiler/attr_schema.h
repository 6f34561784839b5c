// Each op's attributes as the ONNX spec declares them: name, type, required,
// for every version of the op's schema that applies to the opsets amp reads
// (attr_schema.inc, generated from ONNX's own schemas by
// tools/gen_attr_schema.py), plus the values the spec allows where it
// enumerates them (auto_pad, mode, reduction, 0/1 flags, positive strides).
// The importer checks every node against both, so a file whose attribute has
// the wrong type is refused instead of read as the default.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/ir.h"
#include "compiler/status.h"

namespace amp {

// AttributeProto.AttributeType's numbering.
enum class AttrType {
  kUndefined = 0,
  kFloat = 1,
  kInt = 2,
  kString = 3,
  kTensor = 4,
  kGraph = 5,
  kFloats = 6,
  kInts = 7,
  kStrings = 8,
  kTensors = 9,
  kGraphs = 10,
  kSparseTensor = 11,
  kSparseTensors = 12,
  kTypeProto = 13,
  kTypeProtos = 14,
};
// "FLOAT", "INTS", ...
std::string_view AttrTypeName(AttrType t);

struct AttrSpec {
  std::string name;
  AttrType type;
  bool required;
};

struct OpAttrSchema {
  std::string_view domain;  // "" is the default ONNX domain
  std::string_view op;
  int since_version;
  std::vector<AttrSpec> attrs;
  // One letter per formal input: s (required), o (optional), v (variadic:
  // every further input required).
  std::string_view inputs;
  // Per formal input: the element types it allows, bit 1 << DType.
  std::vector<uint32_t> input_types;
  const AttrSpec* Find(std::string_view name) const;
  // The element types input i allows (a variadic last input repeats); 0
  // when the table does not say.
  uint32_t InputTypes(size_t i) const;
  // Whether input i may not be omitted (an empty name).
  bool InputRequired(size_t i) const;
};

struct AttrSchemaLookup {
  // The version in force at the opset, or null.
  const OpAttrSchema* schema = nullptr;
  // When the op is known but `schema` is null: the first opset that has it.
  int first_since = 0;
};
// The schema of `op` in `domain` ("" or "ai.onnx", "ai.onnx.preview.training",
// "ai.amp") at `opset`. Both fields are null/0 for an op the table does not
// know (the op table then reports it as unsupported).
AttrSchemaLookup FindAttrSchema(std::string_view domain, std::string_view op, int64_t opset);

// Checks the attribute values of an imported node against what the spec
// allows (enumerated strings, 0/1 flags, positive strides and dilations,
// non-negative pads, ...). The error names the node, the attribute, the value
// and what is allowed.
Status CheckAttributeValues(const Node& node);

}  // namespace amp
