// ONNX's textual syntax (what onnx.parser and libonnx's OnnxParser read) in
// and out. The printer writes one node per line with the element type and
// shape of its outputs in a trailing `#` comment, so FileCheck lines can see
// precision, and the parser reads the output back (initializers of more than
// kMaxPrintedElements elements are elided as `{...}`, and names that are not
// plain identifiers cannot be re-read).
#pragma once

#include <string>

#include "compiler/ir.h"
#include "compiler/status.h"

namespace amp {

inline constexpr int64_t kMaxPrintedElements = 8;

StatusOr<Model> ParseModelText(const std::string& text);
std::string PrintModel(const Model& model);

}  // namespace amp
