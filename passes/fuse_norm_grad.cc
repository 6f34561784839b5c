#include "passes/fuse_norm_grad.h"

#include <optional>
#include <set>
#include <unordered_set>
#include <vector>

#include "compiler/const_eval.h"
#include "compiler/shape_inference.h"

namespace amp {
namespace {

bool Is(const Node* n, std::string_view op) {
  return n && n->op_type() == op && (n->domain().empty() || n->domain() == "ai.onnx");
}

// The node computing `v` when it is `op`.
Node* Def(const Value* v, std::string_view op) {
  Node* p = v ? v->producer() : nullptr;
  return Is(p, op) ? p : nullptr;
}

// For a commutative binary node, the input that is not `one` (null if
// neither input is `one`).
Value* Other(const Node* n, const Value* one) {
  if (n->input(0) == one) return n->input(1);
  if (n->input(1) == one) return n->input(0);
  return nullptr;
}

// The axes of a keepdims ReduceMean of a rank-`rank` input, normalized and
// sorted (the attribute or a constant input); empty when it is not one.
std::vector<int64_t> MeanAxes(const Node* r, size_t rank) {
  if (!Is(r, "ReduceMean") || r->GetInt("keepdims", 1) != 1) return {};
  std::vector<int64_t> axes = r->GetInts("axes");
  if (!r->HasAttr("axes") && r->input(1)) {
    const Node* c = r->input(1)->producer();
    if (!Is(c, "Constant")) return {};
    auto t = ConstantNodeValue(*c);
    if (!t.ok()) return {};
    for (int64_t i = 0; i < t->num_elements(); ++i) axes.push_back(t->GetInt(i));
  }
  std::set<int64_t> s;
  for (int64_t a : axes) {
    int64_t k = a < 0 ? a + static_cast<int64_t>(rank) : a;
    if (k < 0 || k >= static_cast<int64_t>(rank)) return {};
    s.insert(k);
  }
  return {s.begin(), s.end()};
}

struct Match {
  Value* x = nullptr;
  Value* dxhat = nullptr;
  Value* xhat = nullptr;
  Value* dx = nullptr;
  std::vector<int64_t> axes;  // the normalized axes: trailing (LayerNorm) or all but 1 (BatchNorm)
  float eps = 0;
  std::vector<Node*> nodes;  // the pattern's nodes, consumers last
};

// The pattern with `d` as its last node (dx = Mul(invstd, ...)).
std::optional<Match> MatchAt(Node* d) {
  if (!Is(d, "Mul")) return std::nullopt;
  for (int side = 0; side < 2; ++side) {
    Value* invstd = d->input(side);
    Node* rec = Def(invstd, "Reciprocal");
    Node* t = Def(d->input(1 - side), "Sub");
    if (!rec || !t) continue;
    Node* sq = Def(rec->input(0), "Sqrt");
    Node* add = sq ? Def(sq->input(0), "Add") : nullptr;
    if (!add) continue;
    Node* var = nullptr;
    std::optional<double> eps;
    for (int k = 0; k < 2 && !var; ++k)
      if ((eps = ConstantNodeScalar(add->input(1 - k)))) var = Def(add->input(k), "ReduceMean");
    if (!var) continue;
    Node* sqr = Def(var->input(0), "Mul");
    if (!sqr || sqr->input(0) != sqr->input(1)) continue;
    Value* xc = sqr->input(0);
    Node* center = Def(xc, "Sub");
    if (!center) continue;
    Value* x = center->input(0);
    Node* mean = Def(center->input(1), "ReduceMean");
    if (!mean || mean->input(0) != x) continue;
    // t = Sub(Sub(dxhat, m1), Mul(xhat, m2))
    Node* s1 = Def(t->input(0), "Sub");
    Node* xm2 = Def(t->input(1), "Mul");
    if (!s1 || !xm2) continue;
    Value* dxhat = s1->input(0);
    Node* m1 = Def(s1->input(1), "ReduceMean");
    if (!m1 || m1->input(0) != dxhat) continue;
    Node* xh = nullptr;
    Node* m2 = nullptr;
    for (int k = 0; k < 2 && !m2; ++k) {
      xh = Def(xm2->input(k), "Mul");
      m2 = Def(xm2->input(1 - k), "ReduceMean");
      if (!xh || !m2) m2 = nullptr;
    }
    if (!m2 || Other(xh, xc) != invstd) continue;
    Value* xhat = xh->output(0);
    Node* dm = Def(m2->input(0), "Mul");
    if (!dm || Other(dm, dxhat) != xhat) continue;
    if (!x->type().shape) continue;
    size_t rank = x->type().shape->size();
    std::vector<int64_t> axes = MeanAxes(mean, rank);
    if (axes.empty() || MeanAxes(var, rank) != axes || MeanAxes(m1, rank) != axes ||
        MeanAxes(m2, rank) != axes)
      continue;
    Match m;
    m.x = x;
    m.dxhat = dxhat;
    m.xhat = xhat;
    m.dx = d->output(0);
    m.axes = axes;
    m.eps = static_cast<float>(*eps);
    m.nodes = {mean, center, sqr, var, add, sq, rec, xh, m1, s1, dm, m2, xm2, t, d};
    // Everything computes in FP32 (the kernel rounds where these ops do).
    bool fp32 = x->dtype() == DType::kFloat32 && dxhat->dtype() == DType::kFloat32;
    for (const Node* n : m.nodes) fp32 = fp32 && n->output(0)->dtype() == DType::kFloat32;
    if (fp32) return m;
  }
  return std::nullopt;
}

}  // namespace

StatusOr<bool> FuseNormGrad::Run(Model& model) {
  Graph& g = *model.graph;
  std::set<std::string> named = model.training.NamedValues();
  bool changed = false;
  for (bool again = true; again;) {
    again = false;
    for (Node* d : g.nodes()) {
      auto m = MatchAt(d);
      if (!m) continue;
      // Only xhat and dx may be read outside the pattern.
      std::unordered_set<const Node*> inside(m->nodes.begin(), m->nodes.end());
      bool closed = true;
      for (const Node* n : m->nodes) {
        const Value* v = n->output(0);
        if (v == m->xhat || v == m->dx) continue;
        closed = closed && !v->is_graph_output() && !named.count(v->name());
        for (const Use& u : v->uses()) closed = closed && inside.count(u.node);
      }
      if (!closed) continue;
      bool want_xhat = m->xhat->is_graph_output() || named.count(m->xhat->name());
      for (const Use& u : m->xhat->uses()) want_xhat = want_xhat || !inside.count(u.node);
      std::vector<std::string> names = {m->dx->name() + "_ng"};
      if (want_xhat) names.push_back(m->xhat->name() + "_ng");
      Node* f = g.AddNode("NormalizeGrad", {m->x, m->dxhat}, names, "ai.amp");
      if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
      f->SetAttr("axes", Attribute::Ints(m->axes));
      f->SetAttr("epsilon", Attribute::Float(m->eps));
      f->set_name(d->name().empty() ? "" : d->name() + "/normalize_grad");
      // At the place of the last node, where every input is ready (readers
      // of xhat before it are moved after it by the sort below).
      g.MoveBefore(f, d);
      std::vector<std::pair<Value*, std::string>> results = {{m->dx, m->dx->name()}};
      if (want_xhat) results.push_back({m->xhat, m->xhat->name()});
      for (size_t k = 0; k < results.size(); ++k) {
        f->output(k)->set_type(results[k].first->type());
        g.ReplaceAllUsesWith(results[k].first, f->output(k));
      }
      for (auto it = m->nodes.rbegin(); it != m->nodes.rend(); ++it) g.EraseNode(*it);
      for (size_t k = 0; k < results.size(); ++k)
        AMP_RETURN_IF_ERROR(g.RenameValue(f->output(k), results[k].second));
      changed = again = true;
      break;  // the node list changed
    }
  }
  if (!changed) return false;
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
