// What an op's type and shape inference function (ops/*.cc) sees of its
// node, and where it writes its results; the driver is
// compiler/shape_inference.cc.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compiler/ir.h"
#include "compiler/status.h"

namespace amp {

// What an inference function sees of its node, and where it writes results.
class InferenceContext {
 public:
  InferenceContext(const Node& node, int64_t opset) : node_(node), opset_(opset) {
    outputs_.resize(node.num_outputs());
    output_constants_.resize(node.num_outputs());
    output_shape_values_.resize(node.num_outputs());
  }
  const Node& node() const { return node_; }
  int64_t opset() const { return opset_; }

  size_t num_inputs() const { return node_.num_inputs(); }
  size_t num_outputs() const { return node_.num_outputs(); }
  bool has_input(size_t i) const { return node_.input(i) != nullptr; }
  // Type of input i; must be present.
  const TensorType& input_type(size_t i) const { return node_.input(i)->type(); }
  DType input_dtype(size_t i) const { return node_.input(i)->dtype(); }
  const std::optional<Shape>& input_shape(size_t i) const { return node_.input(i)->type().shape; }
  // Constant data of input i when known at compile time (initializer,
  // Constant node, or a value computed from those), else null.
  const Tensor* constant(size_t i) const { return i < constants_.size() ? constants_[i] : nullptr; }
  // For 0-D/1-D integer inputs computed from shapes: the elements as dims
  // (possibly symbolic). Null when unknown.
  const std::vector<Dim>* shape_value(size_t i) const {
    return i < shape_values_.size() ? shape_values_[i] : nullptr;
  }

  void SetOutput(size_t i, DType dtype, std::optional<Shape> shape) {
    outputs_[i] = TensorType{dtype, std::move(shape)};
  }
  void SetOutputConstant(size_t i, Tensor t) { output_constants_[i] = std::move(t); }
  void SetOutputShapeValue(size_t i, std::vector<Dim> dims) {
    output_shape_values_[i] = std::move(dims);
  }

  template <typename... Args>
  Status Error(const Args&... args) const {
    return InvalidArgument(node_.Describe(), ": ", args...);
  }

  // Filled by the driver.
  std::vector<const Tensor*> constants_;
  std::vector<const std::vector<Dim>*> shape_values_;
  // Read by the driver.
  std::vector<std::optional<TensorType>> outputs_;
  std::vector<std::optional<Tensor>> output_constants_;
  std::vector<std::optional<std::vector<Dim>>> output_shape_values_;

 private:
  const Node& node_;
  int64_t opset_;
};

}  // namespace amp
