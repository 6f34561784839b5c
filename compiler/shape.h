// Tensor types: an element type and a shape whose dims are static (a number),
// symbolic (a name such as "batch") or unknown. An unknown rank is a Shape
// that is absent (std::optional).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compiler/dtype.h"

namespace amp {

// Largest dim amp accepts (2^40): larger ones are certainly corrupt and would
// overflow size computations.
inline constexpr int64_t kMaxDim = int64_t{1} << 40;

class Dim {
 public:
  Dim() = default;                       // unknown
  Dim(int64_t value) : value_(value) {}  // NOLINT: a number is a static dim
  static Dim Symbol(std::string name) {
    Dim d;
    d.symbol_ = std::move(name);
    return d;
  }
  bool is_static() const { return value_ >= 0; }
  bool is_symbolic() const { return value_ < 0 && !symbol_.empty(); }
  bool is_unknown() const { return value_ < 0 && symbol_.empty(); }
  int64_t value() const { return value_; }
  const std::string& symbol() const { return symbol_; }
  // Same static value or same symbol; unknown dims equal nothing.
  bool SameAs(const Dim& other) const;
  std::string ToString() const;  // "32", "batch" or "?"

 private:
  int64_t value_ = -1;
  std::string symbol_;
};

using Shape = std::vector<Dim>;

struct TensorType {
  DType dtype = DType::kUndefined;
  std::optional<Shape> shape;  // nullopt: rank unknown

  bool has_static_shape() const;
  // Element count when every dim is static.
  std::optional<int64_t> NumElements() const;
  // "float[batch,64]", "float16[?]", "int64[]" (scalar) or "float" (rank unknown).
  std::string ToString() const;
};

std::string ShapeToString(const Shape& shape);
// Product of static dims with overflow check; nullopt if not all static or
// the product exceeds 2^62.
std::optional<int64_t> StaticNumElements(const Shape& shape);
// Static dims of a shape, or nullopt when any dim is not static.
std::optional<std::vector<int64_t>> StaticDims(const Shape& shape);
Shape ShapeFromDims(const std::vector<int64_t>& dims);

}  // namespace amp
