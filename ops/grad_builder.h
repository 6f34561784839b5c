// What a gradient rule (the `grad` of an op's record, ops/*.cc) builds with:
// for a forward node and the gradients of its outputs, the graph that
// computes the gradients of its inputs, in standard ONNX ops.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compiler/ir.h"
#include "compiler/status.h"

namespace amp {

class GradBuilder {
 public:
  GradBuilder(Model& model, Node& node, std::vector<Value*> output_grads, std::vector<bool> wanted)
      : model_(model),
        g_(*model.graph),
        node_(node),
        gy_(std::move(output_grads)),
        wanted_(std::move(wanted)) {}

  Node& node() { return node_; }
  Graph& graph() { return g_; }
  int64_t opset() const { return model_.OpsetVersion(""); }
  Value* x(size_t i) { return node_.input(i); }
  Value* y(size_t i) { return node_.output(i); }
  Value* dy(size_t i) { return i < gy_.size() ? gy_[i] : nullptr; }
  bool wants(size_t i) const { return i < wanted_.size() && wanted_[i]; }

  // A new node reading `inputs`, with one output named after the forward node.
  Node* Make(const std::string& op, const std::vector<Value*>& inputs, int num_outputs = 1);
  Value* Op(const std::string& op, const std::vector<Value*>& inputs) {
    return Make(op, inputs)->output(0);
  }
  Value* Scalar(double v, DType dtype = DType::kFloat32);
  Value* Ints(const std::vector<int64_t>& v);
  Value* ShapeOf(Value* v) { return Op("Shape", {v}); }
  // Sum or mean over `axes` (attribute or input, as the opset wants).
  Value* Reduce(const std::string& op, Value* x, const std::vector<int64_t>& axes, bool keepdims);
  // Sums a gradient of shape `from` over the axes that broadcasting added or
  // stretched, so that it has the shape of `like`.
  StatusOr<Value*> ReduceTo(Value* grad, const Shape& from, const Value* like);
  Value* Transpose(Value* v, const std::vector<int64_t>& perm);

  std::vector<Value*> dx;  // the rule's result, one per input (null: none)

 private:
  Model& model_;
  Graph& g_;
  Node& node_;
  std::vector<Value*> gy_;
  std::vector<bool> wanted_;
};

// The shape of a value whose rank autodiff has checked to be known.
const Shape& ShapeOrDie(const Value* v);
// The data of an input known at compile time (an initializer, or a Constant
// in any of its attribute forms), or nothing.
std::optional<Tensor> ConstInput(const Value* v);

}  // namespace amp
