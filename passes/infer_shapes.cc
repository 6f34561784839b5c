#include "passes/infer_shapes.h"

#include "compiler/shape_inference.h"

namespace amp {
namespace {

std::vector<std::string> TypeSnapshot(const Graph& g) {
  std::vector<std::string> out;
  for (const Node* n : g.nodes())
    for (const Value* v : n->outputs()) out.push_back(v->type().ToString());
  return out;
}

}  // namespace

StatusOr<bool> InferShapesPass::Run(Model& model) {
  auto before = TypeSnapshot(*model.graph);
  AMP_RETURN_IF_ERROR(InferShapes(model));
  return before != TypeSnapshot(*model.graph);
}

StatusOr<bool> BindDims::Run(Model& model) {
  bool changed = false;
  Graph& g = *model.graph;
  auto bind = [&](Value* v) {
    auto& shape = v->mutable_type().shape;
    if (!shape) return;
    for (Dim& d : *shape) {
      if (!d.is_symbolic()) continue;
      auto it = bindings_.find(d.symbol());
      if (it == bindings_.end()) continue;
      d = Dim(it->second);
      changed = true;
    }
  };
  for (const auto& [name, value] : bindings_)
    if (value < 0 || value > kMaxDim)
      return InvalidArgument("dim ", name, "=", value, " is out of range");
  for (Value* v : g.inputs()) bind(v);
  for (Value* v : g.outputs()) bind(v);
  for (Node* n : g.nodes())
    for (Value* v : n->outputs()) bind(v);
  if (changed) AMP_RETURN_IF_ERROR(InferShapes(model));
  return changed;
}

}  // namespace amp
