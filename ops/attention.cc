// Attention: the ai.amp ops fuse-attention makes at specialization, after
// precision and autodiff decided everything (passes/fuse_attention.h).
//
//   O = ai.amp.Attention <alpha, transB, out_type> (q, k, v [, mask])
//     S = alpha * q . op(k)  (+ mask)          FP32 (FP32 accumulation)
//     P = Softmax(S) along the keys             FP32
//     O = round(P, v's type) . v                O has v's type (or out_type)
//   dq, dk, dv = ai.amp.AttentionGrad <alpha, grad_alpha, transB, dk_trans, out_types>
//                                     (q, k, v, dO [, mask])
//     S, P recomputed (nothing of the forward is kept: no Sq x Sk tensor
//     lives between the forward and the backward)
//     dP = dO . v^T (FP32)   dv = round(P)^T . dO
//     dS = round((dP - rowsum(dP * P)) * P, q's type)
//     dq = grad_alpha * dS . op(k)^T   dk = grad_alpha * (dS^T . q, or q^T . dS with dk_trans)
//
// q is [..., Sq, D]; k is [..., Sk, D] with transB = 1, [..., D, Sk] with
// transB = 0 (op(k) = k^T, or k); v is [..., Sk, Dv]; q, k and v have the
// same batch dims; mask broadcasts to [..., Sq, Sk]. dk has k's layout
// ([..., Sk, D]) unless dk_trans (then [..., D, Sk]). dq, dk and dv have the
// types of q, k and v unless out_types gives theirs (FP32 accumulations
// stored as they are).
#include <algorithm>

#include "ops/families.h"
#include "ops/infer_util.h"

namespace amp {
namespace {

using Ctx = InferenceContext;

struct AttentionDims {
  Shape batch;
  Dim sq, sk, d, dv;
};

StatusOr<std::optional<AttentionDims>> Dims(const Ctx& c) {
  const auto &q = c.input_shape(0), &k = c.input_shape(1), &v = c.input_shape(2);
  if (!q || !k || !v) return std::optional<AttentionDims>();
  size_t r = q->size();
  if (r < 2 || k->size() != r || v->size() != r)
    return c.Error("q, k and v must have one rank >= 2, not ", ShapeToString(*q), ", ",
                   ShapeToString(*k), ", ", ShapeToString(*v));
  bool tb = c.node().GetInt("transB", 1) != 0;
  AttentionDims d;
  d.batch.assign(q->begin(), q->end() - 2);
  d.sq = (*q)[r - 2];
  d.d = q->back();
  d.sk = tb ? (*k)[r - 2] : k->back();
  Dim kd = tb ? k->back() : (*k)[r - 2];
  d.dv = v->back();
  auto same = [](const Dim& a, const Dim& b) {
    return !a.is_static() || !b.is_static() || a.value() == b.value();
  };
  bool ok = same(kd, d.d) && same((*v)[r - 2], d.sk);
  for (size_t i = 0; i + 2 < r; ++i)
    ok = ok && same((*k)[i], d.batch[i]) && same((*v)[i], d.batch[i]);
  if (!ok)
    return c.Error("q ", ShapeToString(*q), ", k ", ShapeToString(*k), " (transB ", tb, ") and v ",
                   ShapeToString(*v), " do not make an attention");
  return std::optional<AttentionDims>(d);
}

// A float output type from attribute `name` (element `i` of its ints), or `def`.
StatusOr<DType> OutType(const Ctx& c, const char* name, size_t i, DType def) {
  if (!c.node().HasAttr(name)) return def;
  std::vector<int64_t> t = c.node().GetInts(name);
  if (t.empty()) t.push_back(c.node().GetInt(name, 0));
  DType d = i < t.size() ? static_cast<DType>(t[i]) : DType::kUndefined;
  if (!IsFloat(d)) return c.Error(name, " must name float types");
  return d;
}

Status InferAttention(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1, 2}));
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  AMP_ASSIGN_OR_RETURN(DType type, OutType(c, "out_type", 0, c.input_dtype(2)));
  AMP_ASSIGN_OR_RETURN(auto d, Dims(c));
  if (!d) {
    c.SetOutput(0, type, std::nullopt);
    return Status::Ok();
  }
  Shape out = d->batch;
  out.push_back(d->sq);
  out.push_back(d->dv);
  c.SetOutput(0, type, out);
  return Status::Ok();
}

Status InferAttentionGrad(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1, 2, 3}));
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  AMP_ASSIGN_OR_RETURN(auto d, Dims(c));
  DType types[3];
  for (size_t i = 0; i < 3; ++i) {
    AMP_ASSIGN_OR_RETURN(types[i], OutType(c, "out_types", i, c.input_dtype(i)));
  }
  c.SetOutput(0, types[0], c.input_shape(0));
  c.SetOutput(2, types[2], c.input_shape(2));
  if (!d) {
    c.SetOutput(1, types[1], std::nullopt);
    return Status::Ok();
  }
  Shape dk = d->batch;
  bool trans = c.node().GetInt("dk_trans", 0) != 0;
  dk.push_back(trans ? d->d : d->sk);
  dk.push_back(trans ? d->sk : d->d);
  c.SetOutput(1, types[1], dk);
  return Status::Ok();
}

// Multiply-adds times two of one (Sq x Sk) attention over every slice, for
// the product with D columns and the one with Dv columns.
struct Products {
  int64_t qk = 0, pv = 0;
};
Products AttentionProducts(const Node& n) {
  const Value* q = n.input(0);
  const Value* v = n.input(2);
  auto qd = q->type().shape ? StaticDims(*q->type().shape) : std::nullopt;
  auto vd = v->type().shape ? StaticDims(*v->type().shape) : std::nullopt;
  if (!qd || !vd || qd->size() < 2) return {};
  int64_t sk = (*vd)[vd->size() - 2];
  int64_t rows = StaticNumel(*q) / std::max<int64_t>(qd->back(), 1);  // slices * Sq
  return {2 * rows * sk * qd->back(), 2 * rows * sk * vd->back()};
}
// Forward: q.k^T and P.v.
int64_t FlopsAttention(const Node& n) {
  Products p = AttentionProducts(n);
  return p.qk + p.pv;
}
// Backward: q.k^T again, dO.v^T, P^T.dO, dS.k and dS^T.q.
int64_t FlopsAttentionGrad(const Node& n) {
  Products p = AttentionProducts(n);
  return 3 * p.qk + 2 * p.pv;
}

}  // namespace

std::vector<OpDef> AttentionOps() {
  return {
      {.domain = "ai.amp",
       .op_type = "Attention",
       .arity = {3, 4, 1, 1},
       .infer = InferAttention,
       .precision = {OpClass::kNone, "made by fuse-attention at specialization, after precision"},
       .no_grad = "made by fuse-attention after autodiff: never differentiated",
       .vector_flops = FlopsAttention},
      {.domain = "ai.amp",
       .op_type = "AttentionGrad",
       .arity = {4, 5, 3, 3},
       .infer = InferAttentionGrad,
       .precision = {OpClass::kNone, "made by fuse-attention at specialization, after precision"},
       .no_grad = "made by fuse-attention after autodiff: never differentiated",
       .vector_flops = FlopsAttentionGrad,
       .launches = 2},
  };
}

}  // namespace amp
