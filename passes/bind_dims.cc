#include "passes/bind_dims.h"

#include "compiler/shape_inference.h"

namespace amp {

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
  if (changed) AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return changed;
}

}  // namespace amp
