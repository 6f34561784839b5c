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

// Whether `v` is computed from an output of `n` (a fusion of n with v's
// reader would make a cycle).
bool DependsOn(const Value* v, const Node* n) {
  std::vector<const Value*> todo = {v};
  std::set<const Node*> seen;
  while (!todo.empty()) {
    const Node* p = todo.back()->producer();
    todo.pop_back();
    if (!p || !seen.insert(p).second) continue;
    if (p == n) return true;
    for (const Value* in : p->inputs())
      if (in) todo.push_back(in);
  }
  return false;
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
  // The loss beside its gradient: one node for both, reading the logits
  // before the Cast to FP32 that fed them. (A fresh list of nodes: a new
  // node may sit where an erased one was.)
  erased.clear();
  for (Node* grad : g.nodes()) {
    if (erased.count(grad) || grad->domain() != "ai.amp" ||
        grad->op_type() != "SoftmaxCrossEntropyGrad")
      continue;
    Value* x = grad->input(0);
    Value* labels = grad->input(1);
    Node* loss = nullptr;
    for (const Use& u : x->uses())
      if (IsDefaultOp(u.node, "SoftmaxCrossEntropyLoss") && u.index == 0 &&
          u.node->input(1) == labels && u.node->num_inputs() == 2 &&
          (u.node->num_outputs() == 1 || u.node->output(1)->uses().empty()) &&
          u.node->GetString("reduction", "mean") != "none")
        loss = u.node;
    if (!loss || (loss->num_outputs() == 2 && pinned(loss->output(1))) ||
        DependsOn(grad->input(2), loss))
      continue;
    Node* widen = ProducerIf(x, "Cast");
    Value* in = x;
    if (widen && x->uses().size() == 2 && !pinned(x) &&
        (widen->input(0)->dtype() == DType::kFloat16 ||
         widen->input(0)->dtype() == DType::kBFloat16))
      in = widen->input(0);
    else
      widen = nullptr;
    // The scale divided by a constant (the mean's batch size) only for it.
    Value* scale = grad->input(2);
    Node* div = ProducerIf(scale, "Div");
    double divisor = 1.0;
    if (std::optional<double> c = div ? ConstantNodeScalar(div->input(1)) : std::nullopt;
        c && private_value(scale) && div->input(0)->dtype() == DType::kFloat32 &&
        StaticDimsOf(div->input(0)) == std::vector<int64_t>{} && *c != 0 &&
        static_cast<double>(static_cast<float>(*c)) == *c) {
      scale = div->input(0);
      divisor = *c;
    } else {
      div = nullptr;
    }
    std::vector<std::string> names = {loss->output(0)->name() + "_fused",
                                      grad->output(0)->name() + "_fused"};
    if (grad->num_outputs() == 2) names.push_back(grad->output(1)->name() + "_fused");
    Node* fused = g.AddNode("SoftmaxCrossEntropy", {in, labels, scale}, names, "ai.amp");
    for (const char* a : {"reduction", "ignore_index"})
      if (const Attribute* v = loss->FindAttr(a)) fused->SetAttr(a, *v);
    if (const Attribute* v = grad->FindAttr("half_type")) fused->SetAttr("half_type", *v);
    if (div) fused->SetAttr("scale_divisor", Attribute::Float(static_cast<float>(divisor)));
    fused->set_precision(DType::kFloat32, "the loss and its gradient in FP32");
    fused->set_name(loss->name());
    g.MoveBefore(fused, grad);
    std::vector<std::pair<Value*, Value*>> results = {{loss->output(0), fused->output(0)},
                                                      {grad->output(0), fused->output(1)}};
    if (grad->num_outputs() == 2) results.emplace_back(grad->output(1), fused->output(2));
    std::vector<Node*> replaced = {loss, grad};
    if (div) replaced.push_back(div);
    if (widen) replaced.push_back(widen);
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
