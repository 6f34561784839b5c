#include "passes/fuse_norm_grad.h"

#include <algorithm>
#include <optional>
#include <set>
#include <unordered_set>
#include <vector>

#include "compiler/const_eval.h"
#include "compiler/shape_inference.h"
#include "compiler/strided_view.h"

namespace amp {
namespace {

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
  if (!IsDefaultOp(r, "ReduceMean") || r->GetInt("keepdims", 1) != 1) return {};
  return ConstantReduceAxes(*r, static_cast<int64_t>(rank)).value_or(std::vector<int64_t>{});
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
  if (!IsDefaultOp(d, "Mul")) return std::nullopt;
  for (int side = 0; side < 2; ++side) {
    Value* invstd = d->input(side);
    Node* rec = ProducerIf(invstd, "Reciprocal");
    Node* t = ProducerIf(d->input(1 - side), "Sub");
    if (!rec || !t) continue;
    Node* sq = ProducerIf(rec->input(0), "Sqrt");
    Node* add = sq ? ProducerIf(sq->input(0), "Add") : nullptr;
    if (!add) continue;
    Node* var = nullptr;
    std::optional<double> eps;
    for (int k = 0; k < 2 && !var; ++k)
      if ((eps = ConstantNodeScalar(add->input(1 - k))))
        var = ProducerIf(add->input(k), "ReduceMean");
    if (!var) continue;
    Node* sqr = ProducerIf(var->input(0), "Mul");
    if (!sqr || sqr->input(0) != sqr->input(1)) continue;
    Value* xc = sqr->input(0);
    Node* center = ProducerIf(xc, "Sub");
    if (!center) continue;
    Value* x = center->input(0);
    Node* mean = ProducerIf(center->input(1), "ReduceMean");
    if (!mean || mean->input(0) != x) continue;
    // t = Sub(Sub(dxhat, m1), Mul(xhat, m2))
    Node* s1 = ProducerIf(t->input(0), "Sub");
    Node* xm2 = ProducerIf(t->input(1), "Mul");
    if (!s1 || !xm2) continue;
    Value* dxhat = s1->input(0);
    Node* m1 = ProducerIf(s1->input(1), "ReduceMean");
    if (!m1 || m1->input(0) != dxhat) continue;
    Node* xh = nullptr;
    Node* m2 = nullptr;
    for (int k = 0; k < 2 && !m2; ++k) {
      xh = ProducerIf(xm2->input(k), "Mul");
      m2 = ProducerIf(xm2->input(1 - k), "ReduceMean");
      if (!xh || !m2) m2 = nullptr;
    }
    if (!m2 || Other(xh, xc) != invstd) continue;
    Value* xhat = xh->output(0);
    Node* dm = ProducerIf(m2->input(0), "Mul");
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

// The sum of `v` over its leading `lead` axes (keepdims = 0): the gradient
// of a scale or bias broadcast over them. Null when `r` is not that.
bool SumsLeading(const Node* r, const Value* v, size_t lead) {
  if (!IsDefaultOp(r, "ReduceSum") || r->input(0) != v || r->GetInt("keepdims", 1) != 0)
    return false;
  auto axes = ConstantReduceAxes(*r, static_cast<int64_t>(v->type().shape->size()));
  if (!axes || axes->size() != lead) return false;
  for (size_t k = 0; k < lead; ++k)
    if ((*axes)[k] != static_cast<int64_t>(k)) return false;
  return true;
}

std::vector<Node*> ReadersOf(const Value* v) {
  std::vector<Node*> out;
  for (const Use& u : v->uses())
    if (std::find(out.begin(), out.end(), u.node) == out.end()) out.push_back(u.node);
  return out;
}

struct LnMatch {
  Node* ng = nullptr;
  Value *x = nullptr, *dy = nullptr, *scale = nullptr, *addend = nullptr;
  Node *scale_mul = nullptr, *xhat_mul = nullptr, *dscale = nullptr, *dbias = nullptr,
       *sum = nullptr;
  std::vector<Node*> dx_sums;  // ReduceSums of dx over its rows (a bias's gradient)
  int64_t axis = 0;
};

// The first of the trailing axes of `dims` that hold n elements (the
// shortest such suffix), or nullopt.
std::optional<size_t> SuffixOf(const std::vector<int64_t>& dims, int64_t n) {
  int64_t p = 1;
  for (size_t k = dims.size(); k-- > 0;) {
    p *= dims[k];
    if (p == n) return k;
    if (p > n) return std::nullopt;
  }
  return n == 1 ? std::optional<size_t>(dims.size()) : std::nullopt;
}

// Where `v`'s trailing axes start holding one row of dx (its n elements in
// order) while its leading axes enumerate dx's rows in some order: v is dx
// through Transposes that keep those trailing axes in place and reshapes
// (Reshape, Flatten, Squeeze, Unsqueeze, Identity), which keep every row
// contiguous. Nullopt when another op, or a Transpose that moves a row's
// axes, is on the way.
std::optional<size_t> RowSuffix(const Value* v, const Value* dx, int64_t n) {
  auto dims = v->type().shape ? StaticDims(*v->type().shape) : std::nullopt;
  if (!dims) return std::nullopt;
  if (v == dx) return SuffixOf(*dims, n);
  const Node* p = v->producer();
  if (!p || !p->domain().empty()) return std::nullopt;
  const std::string& op = p->op_type();
  if (op == "Transpose") {
    auto k = RowSuffix(p->input(0), dx, n);
    std::vector<int64_t> perm = p->GetInts("perm");
    if (!k || perm.size() != dims->size()) return std::nullopt;
    for (size_t i = *k; i < perm.size(); ++i)
      if (perm[i] != static_cast<int64_t>(i)) return std::nullopt;
    return k;
  }
  if (op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze" ||
      op == "Identity") {
    if (!RowSuffix(p->input(0), dx, n)) return std::nullopt;
    return SuffixOf(*dims, n);
  }
  return std::nullopt;
}

// True when `r` sums dx (rows x n, row-major) over all its rows, reading it
// through layout ops that permute or reshape the rows (RowSuffix): r's
// result is dx's column sums, reshaped to r's output shape.
bool SumsRowsOf(const Node& r, const Value* dx, int64_t n) {
  if (!IsDefaultOp(&r, "ReduceSum") || r.output(0)->dtype() != DType::kFloat32 ||
      !r.output(0)->type().has_static_shape())
    return false;
  auto k = RowSuffix(r.input(0), dx, n);
  if (!k) return false;
  std::vector<int64_t> dims = *StaticDims(*r.input(0)->type().shape);
  auto axes = ConstantReduceAxes(r, static_cast<int64_t>(dims.size()));
  if (!axes) return false;
  for (size_t d = 0; d < dims.size(); ++d) {
    bool reduced = std::find(axes->begin(), axes->end(), static_cast<int64_t>(d)) != axes->end();
    if (dims[d] != 1 && reduced != (d < *k)) return false;
  }
  return true;
}

// The ReduceSums reading `dx` (directly or through layout ops) that
// SumsRowsOf accepts.
std::vector<Node*> RowSumsOf(Value* dx, int64_t n, const std::set<std::string>& named) {
  std::vector<Node*> out;
  std::vector<Value*> todo = {dx};
  while (!todo.empty()) {
    Value* v = todo.back();
    todo.pop_back();
    for (Node* r : ReadersOf(v)) {
      if (IsLayoutOp(*r) && r->output(0)->type().has_static_shape()) {
        todo.push_back(r->output(0));
      } else if (SumsRowsOf(*r, dx, n) && !r->output(0)->is_graph_output() &&
                 !named.count(r->output(0)->name()) &&
                 std::find(out.begin(), out.end(), r) == out.end()) {
        out.push_back(r);
      }
    }
  }
  return out;
}

// LayerNorm's whole backward around a NormalizeGrad over trailing axes:
//   dxhat = Mul(dy, scale)  dx, xhat = NormalizeGrad(x, dxhat)
//   dscale = ReduceSum(Mul(dy, xhat))  [dbias = ReduceSum(dy)]  [Sum(addend, dx)]
std::optional<LnMatch> MatchLayerNormGrad(Node* ng, const std::set<std::string>& named) {
  if (!(ng->domain() == "ai.amp" && ng->op_type() == "NormalizeGrad") || ng->num_outputs() < 2)
    return std::nullopt;
  LnMatch m;
  m.ng = ng;
  m.x = ng->input(0);
  auto dims = m.x->type().shape ? StaticDims(*m.x->type().shape) : std::nullopt;
  if (!dims) return std::nullopt;
  int64_t rank = static_cast<int64_t>(dims->size());
  std::vector<int64_t> axes = ng->GetInts("axes");
  if (axes.empty()) return std::nullopt;
  m.axis = axes[0];
  for (size_t i = 0; i < axes.size(); ++i)
    if (axes[i] != m.axis + static_cast<int64_t>(i)) return std::nullopt;
  if (axes.back() != rank - 1 || m.axis == 0) return std::nullopt;
  auto pinned = [&](const Value* v) { return v->is_graph_output() || named.count(v->name()); };
  Value* dxhat = ng->input(1);
  m.scale_mul = ProducerIf(dxhat, "Mul");
  if (!m.scale_mul || pinned(dxhat) || ReadersOf(dxhat).size() != 1) return std::nullopt;
  std::vector<int64_t> trailing(dims->begin() + m.axis, dims->end());
  for (int side = 0; side < 2 && !m.scale; ++side) {
    Value* s = m.scale_mul->input(1 - side);
    auto sd = s->type().shape ? StaticDims(*s->type().shape) : std::nullopt;
    if (sd && *sd == trailing && m.scale_mul->input(side)->type().shape &&
        StaticDims(*m.scale_mul->input(side)->type().shape) == dims) {
      m.scale = s;
      m.dy = m.scale_mul->input(side);
    }
  }
  if (!m.scale || m.dy->dtype() != DType::kFloat32 || m.scale->dtype() != DType::kFloat32)
    return std::nullopt;
  Value* xhat = ng->output(1);
  std::vector<Node*> xr = ReadersOf(xhat);
  if (pinned(xhat) || xr.size() != 1 || !IsDefaultOp(xr[0], "Mul") || Other(xr[0], xhat) != m.dy)
    return std::nullopt;
  m.xhat_mul = xr[0];
  Value* t = m.xhat_mul->output(0);
  std::vector<Node*> tr = ReadersOf(t);
  if (pinned(t) || tr.size() != 1 || !SumsLeading(tr[0], t, static_cast<size_t>(m.axis)))
    return std::nullopt;
  m.dscale = tr[0];
  for (Node* r : ReadersOf(m.dy))
    if (SumsLeading(r, m.dy, static_cast<size_t>(m.axis))) m.dbias = r;
  // The residual's gradient: dx read only by a two-input Sum of its shape.
  Value* dx = ng->output(0);
  std::vector<Node*> dr = ReadersOf(dx);
  if (!pinned(dx) && dr.size() == 1 && (IsDefaultOp(dr[0], "Sum") || IsDefaultOp(dr[0], "Add")) &&
      dr[0]->num_inputs() == 2 && dr[0]->input(0) != dr[0]->input(1)) {
    Value* a = Other(dr[0], dx);
    if (a && a->dtype() == DType::kFloat32 && a->type().shape &&
        StaticDims(*a->type().shape) == dims) {
      m.sum = dr[0];
      m.addend = a;
    }
  }
  int64_t n = 1;
  for (int64_t d : trailing) n *= d;
  m.dx_sums = RowSumsOf(m.sum ? m.sum->output(0) : dx, n, named);
  return m;
}

// The sum of `v` over every axis but the channel (1), keepdims = 0.
bool SumsAllButChannel(const Node* r, const Value* v) {
  if (!IsDefaultOp(r, "ReduceSum") || r->input(0) != v || r->GetInt("keepdims", 1) != 0)
    return false;
  int64_t rank = static_cast<int64_t>(v->type().shape->size());
  std::vector<int64_t> want = {0};
  for (int64_t a = 2; a < rank; ++a) want.push_back(a);
  return ConstantReduceAxes(*r, rank) == want;
}

struct BnMatch {
  Node* ng = nullptr;
  Value *x = nullptr, *dy = nullptr, *scale = nullptr;
  Node *x_cast = nullptr, *dy_cast = nullptr, *dx_cast = nullptr;
  Node *scale_mul = nullptr, *xhat_mul = nullptr, *dscale = nullptr, *dbias = nullptr;
};

// Training BatchNormalization's whole backward around a NormalizeGrad over
// all axes but the channel:
//   dxhat = Mul(dy, scale [1,C,1,1])  dx, xhat = NormalizeGrad(x, dxhat)
//   dscale = ReduceSum(Mul(dy, xhat))  [dbias = ReduceSum(dy)]
// with the exact Casts around it (x and dy widened from half, dx rounded to
// half) read in and written out by the kernel instead.
std::optional<BnMatch> MatchBatchNormGrad(Node* ng, const std::set<std::string>& named) {
  if (!(ng->domain() == "ai.amp" && ng->op_type() == "NormalizeGrad") || ng->num_outputs() < 2)
    return std::nullopt;
  BnMatch m;
  m.ng = ng;
  m.x = ng->input(0);
  auto dims = m.x->type().shape ? StaticDims(*m.x->type().shape) : std::nullopt;
  if (!dims || dims->size() < 2) return std::nullopt;
  size_t rank = dims->size();
  std::vector<int64_t> want = {0};
  for (size_t a = 2; a < rank; ++a) want.push_back(static_cast<int64_t>(a));
  if (ng->GetInts("axes") != want) return std::nullopt;
  int64_t channels = (*dims)[1];
  auto pinned = [&](const Value* v) { return v->is_graph_output() || named.count(v->name()); };
  Value* dxhat = ng->input(1);
  m.scale_mul = ProducerIf(dxhat, "Mul");
  if (!m.scale_mul || pinned(dxhat) || ReadersOf(dxhat).size() != 1) return std::nullopt;
  for (int side = 0; side < 2 && !m.scale; ++side) {
    Value* s = m.scale_mul->input(1 - side);
    auto sd = s->type().shape ? StaticDims(*s->type().shape) : std::nullopt;
    const Value* d = m.scale_mul->input(side);
    if (!sd || !d->type().shape || StaticDims(*d->type().shape) != dims) continue;
    // One value per channel, broadcast along every other axis.
    bool per_channel = sd->size() == rank || sd->size() + 1 == rank;
    size_t channel_at = sd->size() == rank ? 1 : 0;
    for (size_t i = 0; i < sd->size() && per_channel; ++i)
      per_channel = (*sd)[i] == (i == channel_at ? channels : 1);
    if (per_channel) {
      m.scale = s;
      m.dy = m.scale_mul->input(side);
    }
  }
  if (!m.scale || m.dy->dtype() != DType::kFloat32 || m.scale->dtype() != DType::kFloat32)
    return std::nullopt;
  Value* xhat = ng->output(1);
  std::vector<Node*> xr = ReadersOf(xhat);
  if (pinned(xhat) || xr.size() != 1 || !IsDefaultOp(xr[0], "Mul") || Other(xr[0], xhat) != m.dy)
    return std::nullopt;
  m.xhat_mul = xr[0];
  Value* t = m.xhat_mul->output(0);
  std::vector<Node*> tr = ReadersOf(t);
  if (pinned(t) || tr.size() != 1 || !SumsAllButChannel(tr[0], t)) return std::nullopt;
  m.dscale = tr[0];
  for (Node* r : ReadersOf(m.dy))
    if (SumsAllButChannel(r, m.dy)) m.dbias = r;
  // x widened from half only for this: read the half x.
  Node* xc = ProducerIf(m.x, "Cast");
  if (xc && !pinned(m.x) && ReadersOf(m.x).size() == 1 && IsFloat(xc->input(0)->dtype()) &&
      DTypeSize(xc->input(0)->dtype()) < 4)
    m.x_cast = xc;
  // dy widened from half only for these: read the half dy.
  Node* dc = ProducerIf(m.dy, "Cast");
  if (dc && !pinned(m.dy) && IsFloat(dc->input(0)->dtype()) &&
      DTypeSize(dc->input(0)->dtype()) < 4) {
    bool only_here = true;
    for (const Node* r : ReadersOf(m.dy))
      only_here = only_here && (r == m.scale_mul || r == m.xhat_mul || r == m.dbias);
    if (only_here) m.dy_cast = dc;
  }
  // dx rounded to half for its readers: write it so.
  std::vector<Node*> dr = ReadersOf(ng->output(0));
  if (!pinned(ng->output(0)) && dr.size() == 1 && IsDefaultOp(dr[0], "Cast") &&
      IsFloat(dr[0]->output(0)->dtype()))
    m.dx_cast = dr[0];
  return m;
}

// Each of `results` paired with the output of `f` at its place.
std::vector<std::pair<Value*, Value*>> Pairs(const std::vector<Value*>& results, Node* f) {
  std::vector<std::pair<Value*, Value*>> pairs;
  for (size_t k = 0; k < results.size(); ++k) pairs.emplace_back(results[k], f->output(k));
  return pairs;
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
      std::vector<std::pair<Value*, Value*>> results = {{m->dx, f->output(0)}};
      if (want_xhat) results.push_back({m->xhat, f->output(1)});
      AMP_RETURN_IF_ERROR(g.Substitute(results, m->nodes));
      changed = again = true;
      break;  // the node list changed
    }
  }
  // Then LayerNorm's whole backward into one LayerNormGrad where the
  // scale's gradient is built (a LayerNorm with a trained scale).
  for (bool again = true; again;) {
    again = false;
    std::optional<LnMatch> m;
    for (Node* ng : g.nodes())
      if ((m = MatchLayerNormGrad(ng, named))) break;
    if (!m) break;
    Node* ng = m->ng;
    std::vector<Value*> in = {m->x, m->dy, m->scale};
    if (m->addend) in.push_back(m->addend);
    Value* dx = m->sum ? m->sum->output(0) : ng->output(0);
    std::vector<Value*> results = {dx, m->dscale->output(0)};
    if (m->dbias) results.push_back(m->dbias->output(0));
    std::vector<std::string> names;
    for (const Value* v : results) names.push_back(v->name() + "_ln");
    Node* f = g.AddNode("LayerNormGrad", in, names, "ai.amp");
    f->SetAttr("axis", Attribute::Int(m->axis));
    f->SetAttr("epsilon", Attribute::Float(ng->GetFloat("epsilon", 1e-5f)));
    f->set_name(ng->name().empty() ? "" : ng->name() + "/layer_norm");
    g.MoveBefore(f, m->sum ? m->sum : ng);
    std::vector<Node*> replaced = {m->dscale, m->xhat_mul, ng, m->scale_mul};
    for (Node* n : {m->dbias, m->sum})
      if (n) replaced.push_back(n);
    std::vector<std::pair<Value*, Value*>> pairs = Pairs(results, f);
    // A bias's gradient behind the normalization: dx's column sums, output
    // 3 (with an unread bias gradient at 2 when the LayerNorm has none),
    // each sum a view of them in its own shape.
    std::vector<Node*> walked;
    if (!m->dx_sums.empty()) {
      if (f->num_outputs() < 3) g.AddNodeOutput(f, m->dscale->output(0)->name() + "_dbias_unread");
      Value* sums = g.AddNodeOutput(f, dx->name() + "_rowsum");
      for (Node* r : m->dx_sums) {
        const Value* out = r->output(0);
        std::vector<int64_t> dims = *StaticDims(*out->type().shape);
        Value* shape = g.AddConstant(
            out->name() + "_shape",
            Tensor::FromVector(DType::kInt64, {static_cast<int64_t>(dims.size())}, dims));
        Node* view = g.AddNode("Reshape", {sums, shape}, {out->name() + "_view"});
        view->set_precision(r->precision().compute, r->precision().rule);
        pairs.emplace_back(r->output(0), view->output(0));
        replaced.push_back(r);
        for (Node* l = r->input(0)->producer(); l && IsLayoutOp(*l); l = l->input(0)->producer())
          if (std::find(walked.begin(), walked.end(), l) == walked.end()) walked.push_back(l);
      }
    }
    AMP_RETURN_IF_ERROR(g.Substitute(pairs, replaced));
    // The layout ops only those sums read (and their shape constants).
    for (bool erased = true; erased;) {
      erased = false;
      for (auto it = walked.begin(); it != walked.end(); ++it) {
        const Value* v = (*it)->output(0);
        if (v->uses().empty() && !v->is_graph_output() && !named.count(v->name())) {
          Node* dead = *it;
          walked.erase(it);
          for (size_t i = 1; i < dead->num_inputs(); ++i) {
            Node* c = dead->input(i) ? dead->input(i)->producer() : nullptr;
            if (c && IsDefaultOp(c, "Constant") &&
                std::find(walked.begin(), walked.end(), c) == walked.end())
              walked.push_back(c);
          }
          g.EraseNode(dead);
          erased = true;
          break;
        }
      }
    }
    changed = again = true;
  }
  // And BatchNorm's, where the scale's gradient is built.
  for (bool again = true; again;) {
    again = false;
    std::optional<BnMatch> m;
    for (Node* ng : g.nodes())
      if ((m = MatchBatchNormGrad(ng, named))) break;
    if (!m) break;
    Node* ng = m->ng;
    Value* x = m->x_cast ? m->x_cast->input(0) : m->x;
    Value* dy = m->dy_cast ? m->dy_cast->input(0) : m->dy;
    Value* dx = m->dx_cast ? m->dx_cast->output(0) : ng->output(0);
    std::vector<Value*> results = {dx, m->dscale->output(0)};
    if (m->dbias) results.push_back(m->dbias->output(0));
    std::vector<std::string> names;
    for (const Value* v : results) names.push_back(v->name() + "_bn");
    // The scale is C values in any shape: read the [C] weight itself, not
    // the [1, C, 1, 1] copy autodiff reshaped it into (a copy, not a view,
    // of an initializer).
    Value* scale = m->scale;
    Node* reshape = scale->producer();
    if (reshape && reshape->op_type() == "Reshape" && reshape->domain().empty() &&
        reshape->input(0)->type().NumElements() == scale->type().NumElements() &&
        reshape->input(0)->dtype() == scale->dtype())
      scale = reshape->input(0);
    else
      reshape = nullptr;
    Node* f = g.AddNode("BatchNormGrad", {x, dy, scale}, names, "ai.amp");
    f->SetAttr("epsilon", Attribute::Float(ng->GetFloat("epsilon", 1e-5f)));
    if (dx->dtype() != x->dtype())
      f->SetAttr("dx_type", Attribute::Int(static_cast<int64_t>(dx->dtype())));
    f->set_name(ng->name().empty() ? "" : ng->name() + "/batch_norm");
    g.MoveBefore(f, ng);
    std::vector<Node*> replaced = {m->dscale, m->xhat_mul, ng, m->scale_mul};
    for (Node* n : {m->dbias, m->dx_cast, m->dy_cast, m->x_cast})
      if (n) replaced.push_back(n);
    AMP_RETURN_IF_ERROR(g.Substitute(Pairs(results, f), replaced));
    if (reshape && reshape->output(0)->uses().empty() && !reshape->output(0)->is_graph_output() &&
        !named.count(reshape->output(0)->name()))
      g.EraseNode(reshape);
    changed = again = true;
  }
  if (!changed) return false;
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
