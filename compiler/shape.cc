#include "compiler/shape.h"

#include <limits>

namespace amp {

bool Dim::SameAs(const Dim& other) const {
  if (is_static()) return other.is_static() && value_ == other.value_;
  if (is_symbolic()) return other.is_symbolic() && symbol_ == other.symbol_;
  return false;
}

std::string Dim::ToString() const {
  if (is_static()) return std::to_string(value_);
  if (is_symbolic()) return symbol_;
  return "?";
}

std::string ShapeToString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += shape[i].ToString();
  }
  return s + "]";
}

std::optional<int64_t> StaticNumElements(const Shape& shape) {
  constexpr int64_t kMax = int64_t{1} << 62;
  int64_t n = 1;
  for (const Dim& d : shape) {
    if (!d.is_static()) return std::nullopt;
    if (d.value() != 0 && n > kMax / d.value()) return std::nullopt;
    n *= d.value();
  }
  return n;
}

std::optional<std::vector<int64_t>> StaticDims(const Shape& shape) {
  std::vector<int64_t> dims;
  dims.reserve(shape.size());
  for (const Dim& d : shape) {
    if (!d.is_static()) return std::nullopt;
    dims.push_back(d.value());
  }
  return dims;
}

Shape ShapeFromDims(const std::vector<int64_t>& dims) { return Shape(dims.begin(), dims.end()); }

bool TensorType::has_static_shape() const {
  return shape.has_value() && StaticDims(*shape).has_value();
}

std::optional<int64_t> TensorType::NumElements() const {
  if (!shape) return std::nullopt;
  return StaticNumElements(*shape);
}

std::string TensorType::ToString() const {
  std::string s(DTypeName(dtype));
  if (shape) s += ShapeToString(*shape);
  return s;
}

}  // namespace amp
