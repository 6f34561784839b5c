#include "passes/fuse_max_pool_grad.h"

#include <algorithm>
#include <optional>
#include <set>
#include <vector>

#include "compiler/const_eval.h"
#include "compiler/shape_inference.h"

namespace amp {
namespace {

// Whether `v` is all zeros: a ConstantOfShape of a zero (or of no value) or
// a Constant/initializer holding only zeros.
bool IsZeros(const Value* v) {
  if (Node* c = ProducerIf(v, "ConstantOfShape")) {
    const Attribute* value = c->FindAttr("value");
    if (!value) return true;
    if (value->kind != Attribute::Kind::kTensor) return false;
    const Tensor& t = value->t;
    return t.num_elements() == 1 && t.GetDouble(0) == 0.0;
  }
  std::optional<Tensor> t = ConstantNodeTensor(v);
  if (!t && v->has_initializer()) t = *v->initializer();
  if (!t) return false;
  for (int64_t i = 0; i < t->num_elements(); ++i)
    if (t->GetDouble(i) != 0.0) return false;
  return true;
}

}  // namespace

StatusOr<bool> FuseMaxPoolGrad::Run(Model& model) {
  Graph& g = *model.graph;
  PinnedValues pinned(model, keep_);
  auto private_value = [&](const Value* v) { return pinned.Private(v); };
  bool changed = false;
  std::vector<Node*> pools;      // MaxPools that lost an indices reader
  std::set<const Node*> erased;  // (the list below still holds them)
  for (Node* scatter : g.nodes()) {
    if (erased.count(scatter) || !IsDefaultOp(scatter, "ScatterElements") ||
        scatter->GetInt("axis", 0) != 0 || scatter->GetString("reduction", "none") != "add" ||
        scatter->num_inputs() != 3)
      continue;
    Node* flat_i = ProducerIf(scatter->input(1), "Reshape");
    Node* flat_dy = ProducerIf(scatter->input(2), "Reshape");
    Node* pool = flat_i ? ProducerIf(flat_i->input(0), "MaxPool") : nullptr;
    if (!pool || !flat_dy || pool->num_outputs() < 2 || flat_i->input(0) != pool->output(1) ||
        pool->GetInt("storage_order", 0) != 0 || !IsZeros(scatter->input(0)) ||
        !private_value(scatter->input(1)) || !private_value(scatter->input(2)) ||
        !private_value(scatter->output(0)) || pinned(scatter->input(0)))
      continue;
    // The Reshape back to x's shape, and the Cast insert-casts may put
    // before or after it (O1: FP32 sums, a half gradient), each the only
    // reader of the value before it.
    Node* reshape = nullptr;
    Node* cast = nullptr;
    Node* back = scatter;
    bool ok = true;
    while (ok && back->output(0)->uses().size() == 1 && !(reshape && cast)) {
      Node* next = back->output(0)->uses().front().node;
      bool is_reshape =
          IsDefaultOp(next, "Reshape") && !reshape && next->input(0) == back->output(0);
      bool is_cast = IsDefaultOp(next, "Cast") && !cast;
      if (!is_reshape && !is_cast) break;
      ok = private_value(back->output(0));
      (is_reshape ? reshape : cast) = next;
      back = next;
    }
    if (!ok || !reshape) continue;
    Value* x = pool->input(0);
    Value* dy = flat_dy->input(0);
    auto xs = StaticDimsOf(x), dxs = StaticDimsOf(back->output(0));
    auto dys = StaticDimsOf(dy), ys = StaticDimsOf(pool->output(0));
    if (!xs || !dxs || !dys || !ys || *xs != *dxs || *dys != *ys ||
        scatter->input(0)->dtype() != dy->dtype() || !IsFloat(back->output(0)->dtype()))
      continue;
    Node* fused = g.AddNode("MaxPoolGrad", {dy, x}, {back->output(0)->name() + "_fused"}, "ai.amp");
    if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
    for (const auto& [name, attr] : pool->attributes())
      if (name != "storage_order") fused->SetAttr(name, attr);
    if (cast && cast->output(0)->dtype() != dy->dtype())
      fused->SetAttr("out_type", Attribute::Int(static_cast<int64_t>(cast->output(0)->dtype())));
    fused->set_precision(scatter->precision().compute, scatter->precision().rule);
    fused->set_name(pool->name() + "_grad");
    g.MoveBefore(fused, back);
    std::vector<Node*> replaced = {scatter, flat_i, flat_dy, reshape};
    if (cast) replaced.push_back(cast);
    if (Node* z = scatter->input(0)->producer(); z && scatter->input(0)->uses().size() == 1)
      replaced.push_back(z);
    erased.insert(replaced.begin(), replaced.end());
    AMP_RETURN_IF_ERROR(g.Substitute({{back->output(0), fused->output(0)}}, replaced));
    pools.push_back(pool);
    changed = true;
  }
  // A MaxPool whose indices nothing reads any more computes only y.
  std::sort(pools.begin(), pools.end());
  pools.erase(std::unique(pools.begin(), pools.end()), pools.end());
  for (Node* pool : pools) {
    if (!pool->output(1)->uses().empty() || pinned(pool->output(1))) continue;
    Node* alone = g.AddNode("MaxPool", {pool->input(0)}, {pool->output(0)->name() + "_alone"});
    for (const auto& [name, attr] : pool->attributes()) alone->SetAttr(name, attr);
    alone->set_precision(pool->precision().compute, pool->precision().rule);
    alone->set_name(pool->name());
    g.MoveBefore(alone, pool);
    AMP_RETURN_IF_ERROR(g.Substitute({{pool->output(0), alone->output(0)}}, {pool}));
  }
  if (!changed) return false;
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
