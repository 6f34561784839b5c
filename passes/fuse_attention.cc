#include "passes/fuse_attention.h"

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "compiler/const_eval.h"
#include "compiler/shape_inference.h"

namespace amp {
namespace {

bool IsMatMulT(const Node* n) {
  return n && n->domain() == "ai.amp" && n->op_type() == "MatMulT" && !n->input(2) &&
         !n->HasAttr("activation") && n->num_outputs() == 1;
}
// A product with the given flags, no scale other than `alpha` (when given)
// and no output type of its own unless `out` says which.
bool Product(const Node* n, bool ta, bool tb) {
  if (IsDefaultOp(n, "MatMul")) return !ta && !tb;
  return IsMatMulT(n) && (n->GetInt("transA", 0) != 0) == ta && (n->GetInt("transB", 0) != 0) == tb;
}
float Alpha(const Node* n) { return IsMatMulT(n) ? n->GetFloat("alpha", 1.0f) : 1.0f; }

// The readers of v (nodes, each once), or nullopt when v is read by the
// graph's outputs or after the step.
std::vector<Node*> Readers(const Value* v) {
  std::vector<Node*> out;
  for (const Use& u : v->uses())
    if (std::find(out.begin(), out.end(), u.node) == out.end()) out.push_back(u.node);
  return out;
}

// The input of binary `n` that is not `one` (null if `one` is neither).
Value* Other(const Node* n, const Value* one) {
  if (n->input(0) == one) return n->input(1);
  if (n->input(1) == one) return n->input(0);
  return nullptr;
}

// True when `r` is a keepdims ReduceSum over the last axis of its input.
bool SumsLastAxis(const Node* r) {
  if (!IsDefaultOp(r, "ReduceSum") || r->GetInt("keepdims", 1) != 1) return false;
  const Value* x = r->input(0);
  if (!x->type().shape) return false;
  int64_t rank = static_cast<int64_t>(x->type().shape->size());
  std::vector<int64_t> axes = r->GetInts("axes");
  if (!r->HasAttr("axes")) {
    const Value* a = r->input(1);
    if (!a) return false;
    const Tensor* t = a->initializer();
    std::optional<Tensor> c;
    if (!t && IsDefaultOp(a->producer(), "Constant")) {
      auto v = ConstantNodeValue(*a->producer());
      if (!v.ok()) return false;
      c = std::move(*v);
      t = &*c;
    }
    if (!t) return false;
    for (int64_t i = 0; i < t->num_elements(); ++i) axes.push_back(t->GetInt(i));
  }
  return axes.size() == 1 && (axes[0] == rank - 1 || axes[0] == -1);
}

struct Match {
  Value *q = nullptr, *k = nullptr, *v = nullptr, *mask = nullptr, *dout = nullptr;
  bool tb = true, dk_trans = false;
  float alpha = 1, grad_alpha = 1;
  Node* out_node = nullptr;  // O = P16 . v
  Node *dq_node = nullptr, *dk_node = nullptr, *dv_node = nullptr, *dp_node = nullptr;
  std::vector<Node*> nodes;           // every node of the pattern
  std::vector<Value*> intermediates;  // values only the pattern may read
};

std::optional<Match> MatchAt(Node* softmax) {
  if (!IsDefaultOp(softmax, "Softmax")) return std::nullopt;
  Value* p = softmax->output(0);
  Value* s = softmax->input(0);
  if (!s->type().has_static_shape() || p->dtype() != DType::kFloat32) return std::nullopt;
  int64_t rank = static_cast<int64_t>(s->type().shape->size());
  int64_t axis = softmax->GetInt("axis", -1);
  if (rank < 2 || (axis != -1 && axis != rank - 1)) return std::nullopt;
  Match m;
  m.nodes.push_back(softmax);
  m.intermediates.push_back(s);
  // The scores: alpha * q . op(k) [+ mask], in FP32.
  Node* qk = s->producer();
  if (IsDefaultOp(qk, "Add")) {
    for (int side = 0; side < 2 && !m.mask; ++side) {
      Node* g = qk->input(side)->producer();
      if ((IsMatMulT(g) || IsDefaultOp(g, "MatMul")) &&
          qk->input(side)->dtype() == DType::kFloat32) {
        m.mask = qk->input(1 - side);
        m.nodes.push_back(qk);
        m.intermediates.push_back(qk->input(side));
        qk = g;
      }
    }
    if (!m.mask || m.mask->dtype() != DType::kFloat32 || !m.mask->type().shape ||
        static_cast<int64_t>(m.mask->type().shape->size()) > rank)
      return std::nullopt;
  }
  if (!(IsMatMulT(qk) || IsDefaultOp(qk, "MatMul")) || qk->GetInt("transA", 0) != 0)
    return std::nullopt;
  m.nodes.push_back(qk);
  m.q = qk->input(0);
  m.k = qk->input(1);
  m.tb = qk->GetInt("transB", 0) != 0;
  m.alpha = Alpha(qk);
  if (!m.q->type().shape || static_cast<int64_t>(m.q->type().shape->size()) != rank)
    return std::nullopt;
  // P's readers: the cast to half (or the product with v, in FP32) and the
  // two Muls of Softmax's backward.
  Value* p16 = p;
  Node *t_mul = nullptr, *w_mul = nullptr;
  for (Node* r : Readers(p)) {
    if (IsDefaultOp(r, "Cast") && p16 == p) {
      p16 = r->output(0);
      m.nodes.push_back(r);
    } else if (IsDefaultOp(r, "Mul") && !t_mul) {
      t_mul = r;
    } else if (IsDefaultOp(r, "Mul") && !w_mul) {
      w_mul = r;
    } else if (!Product(r, false, false) && !Product(r, true, false)) {
      return std::nullopt;
    }
  }
  if (!t_mul || !w_mul) return std::nullopt;
  // P16's readers: O = P16 . v and dv = P16^T . dO.
  for (Node* r : Readers(p16)) {
    if (r == t_mul || r == w_mul) continue;  // FP32: P16 is P
    if (Product(r, false, false) && r->input(0) == p16 && Alpha(r) == 1)
      m.out_node = r;
    else if (Product(r, true, false) && r->input(0) == p16 && Alpha(r) == 1)
      m.dv_node = r;
    else
      return std::nullopt;
  }
  if (!m.out_node || !m.dv_node) return std::nullopt;
  m.v = m.out_node->input(1);
  m.dout = m.dv_node->input(1);
  if (m.q->dtype() != m.k->dtype() || m.q->dtype() != m.v->dtype() ||
      p16->dtype() != m.v->dtype() || m.dout->dtype() != m.v->dtype())
    return std::nullopt;
  if (p16 != p) m.intermediates.push_back(p);
  m.intermediates.push_back(p16);
  m.nodes.push_back(m.out_node);
  m.nodes.push_back(m.dv_node);
  // dP = dO . v^T in FP32: read by the Mul of P that sums (t), not the one
  // that makes dS (w).
  auto reads_dp = [&](const Node* mul) -> Node* {
    Value* x = Other(mul, p);
    Node* d = x ? x->producer() : nullptr;
    bool ok = Product(d, false, true) && d->input(0) == m.dout && d->input(1) == m.v &&
              Alpha(d) == 1 && d->output(0)->dtype() == DType::kFloat32;
    return ok ? d : nullptr;
  };
  if (!reads_dp(t_mul)) std::swap(t_mul, w_mul);
  m.dp_node = reads_dp(t_mul);
  if (!m.dp_node) return std::nullopt;
  Value* dp = m.dp_node->output(0);
  // r = ReduceSum(dP * P) over the keys; dS = (dP - r) * P.
  std::vector<Node*> t_readers = Readers(t_mul->output(0));
  if (t_readers.size() != 1 || !SumsLastAxis(t_readers[0])) return std::nullopt;
  Node* sum = t_readers[0];
  std::vector<Node*> r_readers = Readers(sum->output(0));
  if (r_readers.size() != 1 || !IsDefaultOp(r_readers[0], "Sub")) return std::nullopt;
  Node* sub = r_readers[0];
  if (sub->input(0) != dp || sub->input(1) != sum->output(0)) return std::nullopt;
  if (Other(w_mul, p) != sub->output(0)) return std::nullopt;
  m.nodes.insert(m.nodes.end(), {m.dp_node, t_mul, sum, sub, w_mul});
  m.intermediates.insert(m.intermediates.end(),
                         {dp, t_mul->output(0), sum->output(0), sub->output(0)});
  Value* ds = w_mul->output(0);
  std::vector<Node*> ds_readers = Readers(ds);
  if (m.q->dtype() != DType::kFloat32) {
    if (ds_readers.size() != 1 || !IsDefaultOp(ds_readers[0], "Cast")) return std::nullopt;
    m.nodes.push_back(ds_readers[0]);
    m.intermediates.push_back(ds);
    ds = ds_readers[0]->output(0);
    ds_readers = Readers(ds);
  }
  if (ds->dtype() != m.q->dtype()) return std::nullopt;
  m.intermediates.push_back(ds);
  // dq = g * dS . op(k)^T and dk = g * dS^T . q (or q^T . dS).
  for (Node* r : ds_readers) {
    if (Product(r, false, !m.tb) && r->input(0) == ds && r->input(1) == m.k && !m.dq_node) {
      m.dq_node = r;
    } else if (Product(r, true, false) && r->input(0) == ds && r->input(1) == m.q && !m.dk_node) {
      m.dk_node = r;
    } else if (Product(r, true, false) && r->input(0) == m.q && r->input(1) == ds && !m.dk_node) {
      m.dk_node = r;
      m.dk_trans = true;
    } else {
      return std::nullopt;
    }
  }
  if (!m.dq_node || !m.dk_node || Alpha(m.dq_node) != Alpha(m.dk_node)) return std::nullopt;
  m.grad_alpha = Alpha(m.dq_node);
  m.nodes.insert(m.nodes.end(), {m.dq_node, m.dk_node});
  // q, k and v are slices of one batch: the same static batch dims.
  for (const Value* x : {m.q, m.k, m.v, m.dout})
    if (!x->type().has_static_shape() || static_cast<int64_t>(x->type().shape->size()) != rank)
      return std::nullopt;
  for (int64_t i = 0; i + 2 < rank; ++i) {
    int64_t b = (*m.q->type().shape)[i].value();
    for (const Value* x : {m.k, m.v, m.dout})
      if ((*x->type().shape)[i].value() != b) return std::nullopt;
  }
  return m;
}

// True when `t` transposes the last two axes of its input and nothing else.
bool SwapsLastTwo(const Node* t) {
  if (!IsDefaultOp(t, "Transpose")) return false;
  std::vector<int64_t> perm = t->GetInts("perm");
  size_t r = perm.size();
  if (r < 2) return false;
  for (size_t i = 0; i + 2 < r; ++i)
    if (perm[i] != static_cast<int64_t>(i)) return false;
  return perm[r - 2] == static_cast<int64_t>(r - 1) && perm[r - 1] == static_cast<int64_t>(r - 2);
}

}  // namespace

StatusOr<bool> FuseAttention::Run(Model& model) {
  Graph& g = *model.graph;
  PinnedValues pinned(model, keep_);
  bool changed = false;
  for (bool again = true; again;) {
    again = false;
    std::vector<Node*> order = g.nodes();
    std::unordered_map<const Node*, size_t> at;
    for (size_t i = 0; i < order.size(); ++i) at[order[i]] = i;
    for (Node* sm : order) {
      auto m = MatchAt(sm);
      if (!m) continue;
      std::unordered_set<const Node*> inside(m->nodes.begin(), m->nodes.end());
      bool closed = true;
      for (const Value* v : m->intermediates) {
        closed = closed && !pinned(v);
        for (const Use& u : v->uses()) closed = closed && inside.count(u.node);
      }
      if (!closed) continue;
      if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
      std::string base = sm->name().empty() ? m->out_node->output(0)->name() : sm->name();
      std::vector<Value*> fwd_in = {m->q, m->k, m->v};
      std::vector<Value*> bwd_in = {m->q, m->k, m->v, m->dout};
      if (m->mask) {
        fwd_in.push_back(m->mask);
        bwd_in.push_back(m->mask);
      }
      Node* fwd =
          g.AddNode("Attention", fwd_in, {m->out_node->output(0)->name() + "_fa"}, "ai.amp");
      Node* bwd =
          g.AddNode("AttentionGrad", bwd_in,
                    {m->dq_node->output(0)->name() + "_fa", m->dk_node->output(0)->name() + "_fa",
                     m->dv_node->output(0)->name() + "_fa"},
                    "ai.amp");
      fwd->set_name(base + "/attention");
      bwd->set_name(base + "/attention_grad");
      for (Node* f : {fwd, bwd}) {
        f->SetAttr("alpha", Attribute::Float(m->alpha));
        f->SetAttr("transB", Attribute::Int(m->tb ? 1 : 0));
      }
      bwd->SetAttr("grad_alpha", Attribute::Float(m->grad_alpha));
      // The products' own output types (fold-into-gemm: a Cast of them).
      if (m->out_node->output(0)->dtype() != m->v->dtype())
        fwd->SetAttr("out_type",
                     Attribute::Int(static_cast<int64_t>(m->out_node->output(0)->dtype())));
      Value* grads[3] = {m->dq_node->output(0), m->dk_node->output(0), m->dv_node->output(0)};
      if (grads[0]->dtype() != m->q->dtype() || grads[1]->dtype() != m->k->dtype() ||
          grads[2]->dtype() != m->v->dtype())
        bwd->SetAttr("out_types", Attribute::Ints({static_cast<int64_t>(grads[0]->dtype()),
                                                   static_cast<int64_t>(grads[1]->dtype()),
                                                   static_cast<int64_t>(grads[2]->dtype())}));
      bwd->SetAttr("dk_trans", Attribute::Int(m->dk_trans ? 1 : 0));
      // The forward where its product with v was (every input is ready
      // there); the backward where its first node was (dO is ready there).
      g.MoveBefore(fwd, m->out_node);
      g.MoveBefore(bwd, at[m->dp_node] < at[m->dv_node] ? m->dp_node : m->dv_node);
      std::vector<std::pair<Value*, Value*>> results = {{m->out_node->output(0), fwd->output(0)},
                                                        {m->dq_node->output(0), bwd->output(0)},
                                                        {m->dk_node->output(0), bwd->output(1)},
                                                        {m->dv_node->output(0), bwd->output(2)}};
      AMP_RETURN_IF_ERROR(g.Substitute(results, m->nodes));
      // k transposed only for the attention: its transB flag instead.
      Node* t = m->k->producer();
      if (SwapsLastTwo(t) && !pinned(m->k)) {
        std::vector<Node*> readers = Readers(m->k);
        if (std::all_of(readers.begin(), readers.end(),
                        [&](const Node* r) { return r == fwd || r == bwd; })) {
          Value* k = t->input(0);
          for (Node* f : {fwd, bwd}) {
            f->SetInput(1, k);
            f->SetAttr("transB", Attribute::Int(m->tb ? 0 : 1));
          }
          g.EraseNode(t);
        }
      }
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
