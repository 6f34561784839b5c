#include "passes/fold_shapes.h"

#include <algorithm>
#include <unordered_map>

#include "compiler/const_eval.h"

namespace amp {
namespace {

// Shape or Size of a value whose (sliced) shape is static.
std::optional<Tensor> FoldShapeOf(const Node& n) {
  const Value* x = n.input(0);
  if (!x || !x->type().shape) return std::nullopt;
  const Shape& s = *x->type().shape;
  if (n.op_type() == "Size") {
    auto count = StaticNumElements(s);
    if (!count) return std::nullopt;
    return Tensor::FromVector<int64_t>(DType::kInt64, {}, {*count});
  }
  int64_t rank = static_cast<int64_t>(s.size());
  int64_t start = n.GetInt("start", 0), end = n.GetInt("end", rank);
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, start, rank);
  std::vector<int64_t> dims;
  for (int64_t k = start; k < end; ++k) {
    if (!s[k].is_static()) return std::nullopt;
    dims.push_back(s[k].value());
  }
  return Tensor::FromVector<int64_t>(DType::kInt64, {static_cast<int64_t>(dims.size())}, dims);
}

}  // namespace

StatusOr<bool> FoldShapes::Run(Model& model) {
  Graph& g = *model.graph;
  std::unordered_map<const Value*, Tensor> known;
  for (Value* init : g.initializers())
    if (!IsFloat(init->dtype())) known[init] = *init->initializer();
  bool changed = false;
  for (Node* n : g.nodes()) {
    if (n->op_type() == "Constant" && n->domain().empty()) {
      AMP_ASSIGN_OR_RETURN(Tensor t, ConstantNodeValue(*n));
      known[n->output(0)] = std::move(t);
      continue;
    }
    if (!n->domain().empty() || n->num_outputs() != 1) continue;
    std::optional<Tensor> result;
    if (n->op_type() == "Shape" || n->op_type() == "Size") {
      result = FoldShapeOf(*n);
    } else if (CanEvaluate(n->op_type())) {
      std::vector<const Tensor*> inputs;
      bool all_known = true;
      for (Value* in : n->inputs()) {
        if (!in) {
          inputs.push_back(nullptr);
          continue;
        }
        auto it = known.find(in);
        all_known &= it != known.end();
        inputs.push_back(it == known.end() ? nullptr : &it->second);
      }
      if (!all_known) continue;
      AMP_ASSIGN_OR_RETURN(auto evaluated, EvaluateNode(*n, inputs, {n->output(0)->type()}));
      if (evaluated) result = std::move((*evaluated)[0]);
    }
    if (!result || result->num_elements() > kMaxFoldElements) continue;
    known[n->output(0)] = *result;
    g.ReplaceWithConstant(n, std::move(*result));
    changed = true;
  }
  return changed;
}

}  // namespace amp
