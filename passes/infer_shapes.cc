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

StatusOr<bool> InferShapes::Run(Model& model) {
  auto before = TypeSnapshot(*model.graph);
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return before != TypeSnapshot(*model.graph);
}

}  // namespace amp
