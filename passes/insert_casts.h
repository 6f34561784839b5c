// insert-casts: makes the graph follow the precision that paint-precision
// decided. A half node reads half inputs and writes half outputs; an FP32
// node reads FP32. At each colour boundary one Cast is inserted per value and
// target type, however many consumers share it. Constants are converted at
// compile time; parameters (float initializers) keep their FP32 master copy
// and get one Cast, i.e. one conversion per step. Shape, index and axes inputs
// are never touched, BatchNormalization keeps FP32 scale, bias and
// statistics, and graph inputs and outputs keep their types (an output
// computed in half gets a Cast back, under the output's own name).
#pragma once

#include "passes/pass.h"

namespace amp {

class InsertCasts : public Pass {
 public:
  static constexpr std::string_view kName = "insert-casts";
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;
};

}  // namespace amp
