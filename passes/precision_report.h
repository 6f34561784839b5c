// The explainable precision report: per op type how many nodes run in half
// and in FP32, the Casts amp added and removed, the estimated activation
// bytes in FP32 against mixed precision, and for every node the rule that
// decided it. Built from the annotations paint-precision and insert-casts
// leave on the compiled model.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "compiler/ir.h"

namespace amp {

struct ReportContext {
  std::string dtype = "fp16";
  std::string opt_level = "O1";
  int casts_before = 0;  // Cast nodes in the model before compiling
};

nlohmann::json BuildPrecisionReport(const Model& compiled, const ReportContext& context);
std::string FormatPrecisionReport(const nlohmann::json& report);
// Graphviz: half nodes green, FP32 red, amp's Casts yellow, others grey.
std::string PrecisionDot(const Model& compiled);
// Counts Cast nodes (for ReportContext::casts_before).
int CountCasts(const Model& model);

}  // namespace amp
