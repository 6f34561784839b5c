#include "passes/fuse_cross_entropy.h"

#include <optional>
#include <vector>

#include "compiler/const_eval.h"
#include "compiler/shape_inference.h"

namespace amp {
namespace {

// axis 1 (or -1) of a rank-2 tensor.
bool AxisOne(const Node* n) {
  int64_t a = n->GetInt("axis", -1);
  return a == 1 || a == -1;
}

}  // namespace

StatusOr<bool> FuseCrossEntropy::Run(Model& model) {
  Graph& g = *model.graph;
  PinnedValues pinned(model, keep_);
  auto private_value = [&](const Value* v) { return pinned.Private(v); };
  bool changed = false;
  std::set<const Node*> erased;  // (the list below still holds them)
  for (Node* sub : g.nodes()) {
    if (erased.count(sub) || !IsDefaultOp(sub, "Sub") || sub->output(0)->dtype() != DType::kFloat32)
      continue;
    Node* sm = sub->input(0)->producer();
    Node* oh = sub->input(1)->producer();
    if (!IsDefaultOp(sm, "Softmax") || !IsDefaultOp(oh, "OneHot") || !AxisOne(sm) || !AxisOne(oh) ||
        !private_value(sm->output(0)) || !private_value(oh->output(0)))
      continue;
    Value* x = sm->input(0);
    auto xd = StaticDimsOf(x), ld = StaticDimsOf(oh->input(0));
    if (!xd || xd->size() != 2 || x->dtype() != DType::kFloat32 || !ld || ld->size() != 1 ||
        (*ld)[0] != (*xd)[0] || oh->output(0)->dtype() != DType::kFloat32)
      continue;
    auto depth = ConstantNodeTensor(oh->input(1));
    auto values = ConstantNodeTensor(oh->input(2));
    if (!depth || depth->num_elements() != 1 || depth->GetDouble(0) != (*xd)[1] || !values ||
        values->num_elements() != 2 || values->GetDouble(0) != 0.0 || values->GetDouble(1) != 1.0)
      continue;
    // The difference times the loss's scale; or the difference alone, when
    // a constant scale went into the GEMM that reads it (fold-into-gemm).
    Node* last = sub;
    Value* scale = nullptr;
    if (private_value(sub->output(0))) {
      Node* mul = sub->output(0)->uses()[0].node;
      if (IsDefaultOp(mul, "Mul") && mul->output(0)->dtype() == DType::kFloat32 &&
          StaticDimsOf(mul->output(0)) == xd) {
        Value* s = mul->input(0) == sub->output(0) ? mul->input(1) : mul->input(0);
        auto sd = StaticDimsOf(s);
        int64_t numel = 1;
        for (int64_t d : sd ? *sd : std::vector<int64_t>{0}) numel *= d;
        bool per_row = sd && sd->size() == 2 && (*sd)[0] == (*xd)[0] && (*sd)[1] == 1;
        if (s->dtype() == DType::kFloat32 && (numel == 1 || per_row)) {
          last = mul;
          scale = s;
        }
      }
    }
    if (!scale) scale = g.AddScalar(sub->output(0)->name() + "_unit", DType::kFloat32, 1.0);
    Value* dx = last->output(0);
    // A half copy of the gradient (the GEMMs' operand) comes out too.
    Node* cast = nullptr;
    for (const Use& u : dx->uses())
      if (IsDefaultOp(u.node, "Cast") && (u.node->output(0)->dtype() == DType::kFloat16 ||
                                          u.node->output(0)->dtype() == DType::kBFloat16))
        cast = u.node;
    std::vector<std::string> names = {dx->name() + "_fused"};
    if (cast) names.push_back(cast->output(0)->name() + "_fused");
    Node* fused = g.AddNode("SoftmaxCrossEntropyGrad", {x, oh->input(0), scale}, names, "ai.amp");
    if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
    if (cast)
      fused->SetAttr("half_type", Attribute::Int(static_cast<int64_t>(cast->output(0)->dtype())));
    fused->set_precision(DType::kFloat32, "the loss's gradient in FP32");
    fused->set_name(last->name());
    g.MoveBefore(fused, last);
    std::vector<std::pair<Value*, Value*>> results = {{dx, fused->output(0)}};
    std::vector<Node*> replaced = {sub, sm, oh};
    if (last != sub) replaced.insert(replaced.begin(), last);
    if (cast) {
      results.emplace_back(cast->output(0), fused->output(1));
      replaced.insert(replaced.begin(), cast);
    }
    erased.insert(replaced.begin(), replaced.end());
    AMP_RETURN_IF_ERROR(g.Substitute(results, replaced));
    changed = true;
  }
  if (!changed) return false;
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
