#include "passes/fold_casts.h"

#include <algorithm>
#include <map>
#include <unordered_set>

#include "passes/paint_precision.h"

namespace amp {
namespace {

int FloatRank(DType t) {  // mantissa and exponent both grow along this order
  switch (t) {
    case DType::kFloat16:
      return 1;
    case DType::kFloat32:
      return 3;
    case DType::kFloat64:
      return 4;
    default:
      return 0;
  }
}

bool IsSigned(DType t) {
  return t == DType::kInt8 || t == DType::kInt16 || t == DType::kInt32 || t == DType::kInt64;
}

DType CastTarget(const Node& n) { return static_cast<DType>(n.GetInt("to", 0)); }

}  // namespace

bool IsPureLayout(const Node& n) {
  for (const char* op : {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"})
    if (IsDefaultOp(&n, op)) return true;
  return false;
}

bool IsExactWidening(DType from, DType to) {
  if (from == to) return true;
  if (from == DType::kBFloat16) return to == DType::kFloat32 || to == DType::kFloat64;
  if (FloatRank(from) && FloatRank(to)) return FloatRank(from) < FloatRank(to);
  if (IsInteger(from) && IsInteger(to)) {
    size_t fs = DTypeSize(from), ts = DTypeSize(to);
    if (IsSigned(from) == IsSigned(to)) return fs <= ts;
    return !IsSigned(from) && IsSigned(to) && fs < ts;  // unsigned into a wider signed
  }
  return false;
}

StatusOr<bool> FoldCasts::Run(Model& model) {
  Graph& g = *model.graph;
  bool changed = false;
  std::unordered_set<const Node*> erased;  // compared, never dereferenced
  auto drop = [&](Node* cast, Value* replacement) {
    g.ReplaceAllUsesWith(cast->output(0), replacement);
    model.training.Rename(cast->output(0)->name(), replacement->name());
    erased.insert(cast);
    g.EraseNode(cast);
    changed = true;
  };
  for (Node* n : g.nodes()) {
    if (n->op_type() != "Cast" || !n->domain().empty()) continue;
    Value* x = n->input(0);
    Value* out = n->output(0);
    bool keep = out->is_graph_output();  // its name is the model's interface
    if (x->dtype() == CastTarget(*n)) {
      if (!keep) drop(n, x);
      continue;
    }
    Node* inner = x->producer();
    if (inner && inner->op_type() == "Cast" && inner->domain().empty() &&
        IsExactWidening(inner->input(0)->dtype(), x->dtype())) {
      Value* source = inner->input(0);
      if (source->dtype() == CastTarget(*n) && !keep) {
        drop(n, source);
      } else if (source->dtype() != CastTarget(*n)) {
        n->SetInput(0, source);
        changed = true;
      }
      if (x->uses().empty() && !x->is_graph_output()) {
        erased.insert(inner);
        g.EraseNode(inner);
      }
    }
  }
  // Cast<T>(L(...(Cast<U>(x)))) with x of type T widened exactly to U and
  // layout ops L between, each read only by the next: the layout ops move
  // x itself and both Casts go (a widening, a copy, then the narrowing back
  // is the copy).
  for (Node* n : g.nodes()) {
    if (erased.count(n) || n->op_type() != "Cast" || !n->domain().empty()) continue;
    if (n->output(0)->is_graph_output()) continue;
    DType t = CastTarget(*n);
    std::vector<Node*> chain;  // from the outer Cast's producer up
    Value* v = n->input(0);
    while (v->uses().size() == 1 && !v->is_graph_output() && v->producer() &&
           IsPureLayout(*v->producer())) {
      chain.push_back(v->producer());
      v = v->producer()->input(0);
    }
    Node* inner = v->producer();
    if (chain.empty() || !inner || inner->op_type() != "Cast" || !inner->domain().empty() ||
        v->uses().size() != 1 || v->is_graph_output())
      continue;
    Value* source = inner->input(0);
    if (source->dtype() != t || !IsExactWidening(t, v->dtype())) continue;
    // A half batch Transpose into a MatMul is what onnxruntime crashes on.
    if (std::any_of(chain.begin(), chain.end(),
                    [&](const Node* l) { return IsBatchTransposeIntoMatMul(*l, n->output(0)); }))
      continue;
    chain.back()->SetInput(0, source);
    for (Node* l : chain) {
      l->output(0)->mutable_type().dtype = t;
      if (l->precision().decided()) l->set_precision(t, l->precision().rule);
    }
    drop(n, n->input(0));
    erased.insert(inner);
    g.EraseNode(inner);
  }
  // One Cast per (value, type), for every kind of value.
  auto dedupe = [&](Value* v) {
    std::map<DType, Node*> first;
    std::vector<Node*> casts;
    for (const Use& u : v->uses())
      if (u.node->op_type() == "Cast" && u.node->domain().empty()) casts.push_back(u.node);
    for (Node* c : casts) {
      auto [it, inserted] = first.emplace(CastTarget(*c), c);
      if (!inserted && !c->output(0)->is_graph_output()) drop(c, it->second->output(0));
    }
  };
  for (Value* v : g.inputs()) dedupe(v);
  for (Value* v : g.initializers()) dedupe(v);
  for (Node* n : g.nodes()) {
    if (erased.count(n)) continue;  // a duplicate removed by an earlier dedupe
    for (Value* v : n->outputs()) dedupe(v);
  }
  if (changed) AMP_RETURN_IF_ERROR(g.TopologicalSort());
  return changed;
}

}  // namespace amp
