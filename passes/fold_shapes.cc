#include "passes/fold_shapes.h"

#include "compiler/const_eval.h"
#include "compiler/shape_inference.h"

namespace amp {

StatusOr<bool> FoldShapes::Run(Model& model) {
  AMP_ASSIGN_OR_RETURN(auto constants, CompileTimeConstants(model));
  bool changed = false;
  for (Node* n : model.graph->nodes()) {
    if (n->op_type() == "Constant" || n->num_outputs() != 1) continue;
    auto it = constants.find(n->output(0));
    if (it == constants.end() || it->second.num_elements() > kMaxFoldElements) continue;
    model.graph->ReplaceWithConstant(n, it->second);
    changed = true;
  }
  return changed;
}

}  // namespace amp
