// Attention: the ai.amp ops fuse-attention makes at specialization, after
// precision and autodiff decided everything (passes/fuse_attention.h).
//
//   O [, stats] = ai.amp.Attention <alpha, transB, out_type> (q, k, v [, mask])
//     S = alpha * q . op(k)  (+ mask)          FP32 (FP32 accumulation)
//     P = Softmax(S) along the keys             FP32
//     O = round(P, v's type) . v                O has v's type (or out_type)
//     stats = logsumexp(S) along the keys       FP32 [batch..., Sq]
//   dq, dk, dv = ai.amp.AttentionGrad <alpha, grad_alpha, transB, dk_trans, out_types>
//                                     (q, k, v, dO [, mask] [, O, stats])
//     S, P recomputed (no Sq x Sk tensor lives between the forward and the
//     backward); O and stats, when given, are the forward's (link-attention-
//     stats wires them for a backend whose kernel needs them: cuDNN's fused
//     attention backward takes P as exp(S - stats) and rowsum(dP * P) as
//     rowsum(dO * O)); a kernel that does not need them ignores them
//     dP = dO . v^T (FP32)   dv = round(P)^T . dO
//     dS = round((dP - rowsum(dP * P)) * P, q's type)
//     dq = grad_alpha * dS . op(k)^T   dk = grad_alpha * (dS^T . q, or q^T . dS with dk_trans)
//
// Plain form: q is [..., Sq, D]; k is [..., Sk, D] with transB = 1,
// [..., D, Sk] with transB = 0 (op(k) = k^T, or k); v is [..., Sk, Dv]; q, k
// and v have the same batch dims; mask broadcasts to [..., Sq, Sk]. dk has
// k's layout ([..., Sk, D]) unless dk_trans (then [..., D, Sk]). dq, dk and
// dv have the types of q, k and v unless out_types gives theirs (FP32
// accumulations stored as they are).
//
// View form (fold-attention-views): the operands are strided views of the
// tensors the node reads and writes, so that the layout ops around an
// attention (the heads split out of a packed QKV projection, merged back
// after it, and their gradients' inverse) are index arithmetic:
//   dims       ints  [b_1, ..., b_n, Sq, Sk, D, Dv]: q [b.., Sq, D],
//                    k [b.., Sk, D], v [b.., Sk, Dv], O and dO [b.., Sq, Dv]
//   views      ints  per operand - q, k, v, O (Attention); q, k, v, dO, dq,
//                    dk, dv [, the forward's O] (AttentionGrad) - n + 3
//                    ints: the offset, the n
//                    batch strides, the row and the column stride, in
//                    elements of the tensor holding it: q, k, v, dO inputs
//                    0-3; O output 0; dq, dk, dv outputs 0-2, or all three
//                    output 0 when AttentionGrad has one output (the
//                    gradient of the packed tensor q, k and v are views of);
//                    the forward's O input 5
//   out_shapes ints  per output but the stats, its rank then its dims
// transB and dk_trans are not used (the strides say it). The views written
// into one output must not overlap (the kernels check); an output's
// elements no view covers are zero (for a packed gradient: the gradient of
// elements q, k and v do not read). The mask broadcasts to [b.., Sq, Sk]. A
// packed gradient has out_types[0] or q's type.
#include "ops/attention.h"

#include <algorithm>

#include "kernels/tensor_ref.h"
#include "ops/families.h"
#include "ops/infer_util.h"

namespace amp {
namespace {

using Ctx = InferenceContext;

bool IsGrad(const Node& n) { return n.op_type() == "AttentionGrad"; }
bool IsViewForm(const Node& n) { return n.HasAttr("views"); }
size_t NumOperands(const AttentionAttrs& n) { return n.grad ? (n.forward ? 8 : 7) : 4; }
// The outputs out_shapes lists (all but the stats).
size_t ViewOutputs(const AttentionAttrs& n) { return n.num_outputs - (n.stats ? 1 : 0); }

int64_t Numel(const std::vector<int64_t>& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

// Contiguous strides over the batch dims of slices of `slice` elements.
std::vector<int64_t> BatchStrides(const std::vector<int64_t>& batch, int64_t slice) {
  std::vector<int64_t> st(batch.size());
  for (size_t i = batch.size(); i-- > 0;) {
    st[i] = slice;
    slice *= batch[i];
  }
  return st;
}

// The shapes out_shapes lists (rank, then dims, per output).
StatusOr<std::vector<std::vector<int64_t>>> OutShapes(const AttentionAttrs& n) {
  const std::vector<int64_t>& flat = n.out_shapes;
  std::vector<std::vector<int64_t>> out;
  for (size_t i = 0; i < flat.size();) {
    int64_t r = flat[i++];
    if (r < 0 || i + r > flat.size())
      return InvalidArgument(n.describe, ": out_shapes is not a list of ranks and dims");
    out.emplace_back(flat.begin() + i, flat.begin() + i + r);
    for (int64_t d : out.back())
      if (d < 0) return InvalidArgument(n.describe, ": out_shapes has a negative dim");
    i += r;
  }
  if (out.size() != ViewOutputs(n))
    return InvalidArgument(n.describe, ": out_shapes gives ", out.size(), " shapes for ",
                           ViewOutputs(n), " outputs");
  return out;
}

StatusOr<AttentionLayout> ViewLayout(const AttentionAttrs& n,
                                     const std::vector<std::vector<int64_t>>& input_dims) {
  AttentionLayout l;
  l.views = true;
  const std::vector<int64_t>& dims = n.dims;
  if (dims.size() < 4 || dims.size() > 4 + 8)
    return InvalidArgument(n.describe, ": dims must be [batch..., Sq, Sk, D, Dv]");
  for (int64_t d : dims)
    if (d < 0) return InvalidArgument(n.describe, ": dims has a negative dim");
  size_t nb = dims.size() - 4;
  l.batch.assign(dims.begin(), dims.begin() + nb);
  l.slices = Numel(l.batch);
  l.sq = dims[nb];
  l.sk = dims[nb + 1];
  l.d = dims[nb + 2];
  l.dv = dims[nb + 3];
  if (n.trans_b != 1 || n.dk_trans != 0)
    return InvalidArgument(
        n.describe, ": the view form takes no transB = 0 or dk_trans (its strides say the layout)");
  bool grad = n.grad;
  if (grad ? (n.num_outputs != 1 && n.num_outputs != 3) : ViewOutputs(n) != 1)
    return InvalidArgument(n.describe, ": the view form has ",
                           grad ? "1 or 3 outputs" : "1 output");
  AMP_ASSIGN_OR_RETURN(l.out_shapes, OutShapes(n));
  const std::vector<int64_t>& v = n.views;
  size_t per = nb + 3, count = NumOperands(n);
  if (v.size() != per * count)
    return InvalidArgument(n.describe, ": views needs ", per * count, " ints (", count,
                           " operands of offset, ", nb,
                           " batch strides, row and column strides), not ", v.size());
  static const char* kNames[] = {"q", "k", "v", "O", "dq", "dk", "dv", "O"};
  for (size_t o = 0; o < count; ++o) {
    AttentionOperand op;
    const int64_t* e = v.data() + o * per;
    op.offset = e[0];
    op.batch_strides.assign(e + 1, e + 1 + nb);
    op.row = e[1 + nb];
    op.col = e[2 + nb];
    bool fwd_o = o == kAttnFwdO;
    bool is_input = o < (grad ? 4u : 3u) || fwd_o;
    op.tensor = fwd_o      ? 5
                : is_input ? static_cast<int>(o)
                           : (grad && n.num_outputs == 3 ? static_cast<int>(o - 4) : 0);
    const char* name = grad && o == 3 ? "dO" : kNames[o];
    // Bounds: every element inside the tensor.
    bool rows_are_queries = o == kAttnQ || o == 3 || o == kAttnDQ || fwd_o;
    int64_t rows = rows_are_queries ? l.sq : l.sk;
    int64_t cols = (o == kAttnQ || o == kAttnK || o == kAttnDQ || o == kAttnDK) ? l.d : l.dv;
    int64_t last = op.offset, numel = -1;
    bool bad = op.offset < 0 || op.row < 0 || op.col < 0;
    for (size_t i = 0; i < nb; ++i) {
      bad = bad || op.batch_strides[i] < 0;
      if (l.batch[i] > 0) last += (l.batch[i] - 1) * op.batch_strides[i];
    }
    if (rows > 0) last += (rows - 1) * op.row;
    if (cols > 0) last += (cols - 1) * op.col;
    if (is_input) {
      if (static_cast<size_t>(op.tensor) < input_dims.size()) numel = Numel(input_dims[op.tensor]);
    } else {
      numel = Numel(l.out_shapes[op.tensor]);
    }
    bool empty = l.slices * rows * cols == 0;
    if (bad || (numel >= 0 && !empty && last >= numel))
      return InvalidArgument(n.describe, ": the view of ", name, " reaches element ", last,
                             " of a tensor of ", numel, " (or has a negative stride)");
    l.operands.push_back(std::move(op));
  }
  if (n.stats) l.out_shapes.push_back(l.StatsShape());
  return l;
}

StatusOr<AttentionLayout> PlainLayout(const AttentionAttrs& n,
                                      const std::vector<std::vector<int64_t>>& in) {
  bool grad = n.grad;
  if (in.size() < (grad ? 4u : 3u))
    return InvalidArgument(n.describe, ": needs q, k, v", grad ? " and dO" : "");
  const auto &q = in[0], &k = in[1], &v = in[2];
  size_t r = q.size();
  if (r < 2 || k.size() != r || v.size() != r)
    return InvalidArgument(n.describe, ": q, k and v need one rank >= 2");
  bool tb = n.trans_b != 0, dk_trans = n.dk_trans != 0;
  AttentionLayout l;
  l.batch.assign(q.begin(), q.end() - 2);
  l.slices = Numel(l.batch);
  l.sq = q[r - 2];
  l.d = q[r - 1];
  l.sk = tb ? k[r - 2] : k[r - 1];
  l.dv = v[r - 1];
  for (size_t i = 0; i + 2 < r; ++i)
    if (k[i] != q[i] || v[i] != q[i])
      return InvalidArgument(n.describe, ": q, k and v need the same batch dims");
  if ((tb ? k[r - 1] : k[r - 2]) != l.d || v[r - 2] != l.sk)
    return InvalidArgument(n.describe, ": k or v does not match q");
  auto mat = [&](int tensor, int64_t rows, int64_t cols, bool trans) {
    AttentionOperand o;
    o.tensor = tensor;
    o.batch_strides = BatchStrides(l.batch, rows * cols);
    o.row = trans ? 1 : cols;
    o.col = trans ? rows : 1;
    return o;
  };
  l.operands = {mat(0, l.sq, l.d, false), mat(1, l.sk, l.d, !tb), mat(2, l.sk, l.dv, false)};
  auto shape = [&](int64_t a, int64_t b) {
    std::vector<int64_t> s = l.batch;
    s.push_back(a);
    s.push_back(b);
    return s;
  };
  if (!grad) {
    l.operands.push_back(mat(0, l.sq, l.dv, false));
    l.out_shapes = {shape(l.sq, l.dv)};
    if (n.stats) l.out_shapes.push_back(l.StatsShape());
    return l;
  }
  if (in.size() > 3 && in[3] != shape(l.sq, l.dv))
    return InvalidArgument(n.describe, ": dO must be [batch..., Sq, Dv]");
  l.operands.push_back(mat(3, l.sq, l.dv, false));
  l.operands.push_back(mat(0, l.sq, l.d, false));
  l.operands.push_back(mat(1, l.sk, l.d, dk_trans));
  l.operands.push_back(mat(2, l.sk, l.dv, false));
  l.out_shapes = {q, dk_trans ? shape(l.d, l.sk) : shape(l.sk, l.d), v};
  if (n.forward) {
    if (in.size() > 5 && in[5] != shape(l.sq, l.dv))
      return InvalidArgument(n.describe, ": the forward's O must be [batch..., Sq, Dv]");
    l.operands.push_back(mat(5, l.sq, l.dv, false));
  }
  return l;
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

// The static dims of the inputs that have them, or nullopt.
std::optional<std::vector<std::vector<int64_t>>> StaticInputs(const Ctx& c, size_t count) {
  std::vector<std::vector<int64_t>> dims;
  for (size_t i = 0; i < count; ++i) {
    if (!c.input_shape(i)) return std::nullopt;
    auto d = StaticDims(*c.input_shape(i));
    if (!d) return std::nullopt;
    dims.push_back(*d);
  }
  return dims;
}

// The plain form's dims check, for shapes that may be symbolic.
Status CheckPlainDims(const Ctx& c) {
  const auto &q = c.input_shape(0), &k = c.input_shape(1), &v = c.input_shape(2);
  if (!q || !k || !v) return Status::Ok();
  size_t r = q->size();
  if (r < 2 || k->size() != r || v->size() != r)
    return c.Error("q, k and v must have one rank >= 2, not ", ShapeToString(*q), ", ",
                   ShapeToString(*k), ", ", ShapeToString(*v));
  bool tb = c.node().GetInt("transB", 1) != 0;
  auto same = [](const Dim& a, const Dim& b) {
    return !a.is_static() || !b.is_static() || a.value() == b.value();
  };
  Dim sk = tb ? (*k)[r - 2] : k->back(), kd = tb ? k->back() : (*k)[r - 2];
  bool ok = same(kd, q->back()) && same((*v)[r - 2], sk);
  for (size_t i = 0; i + 2 < r; ++i) ok = ok && same((*k)[i], (*q)[i]) && same((*v)[i], (*q)[i]);
  if (!ok)
    return c.Error("q ", ShapeToString(*q), ", k ", ShapeToString(*k), " (transB ", tb, ") and v ",
                   ShapeToString(*v), " do not make an attention");
  return Status::Ok();
}

// Output shapes: the view form's out_shapes, or the plain form's from q, k
// and v (nullopt entries where they are not known).
StatusOr<std::vector<std::optional<Shape>>> OutputShapes(const Ctx& c) {
  const Node& n = c.node();
  std::vector<std::optional<Shape>> out(n.num_outputs());
  size_t ins = IsGrad(n) ? 4 : 3;
  if (IsViewForm(n)) {
    // Bounds against the inputs when their shapes are static.
    auto dims = StaticInputs(c, ins);
    if (dims) {
      AMP_RETURN_IF_ERROR(AttentionLayoutOf(AttentionAttrs::Of(n), *dims).status());
    }
    AttentionAttrs attrs = AttentionAttrs::Of(n);
    AMP_ASSIGN_OR_RETURN(auto shapes, OutShapes(attrs));
    for (size_t i = 0; i < shapes.size(); ++i) out[i] = ShapeFromDims(shapes[i]);
    if (attrs.stats && attrs.dims.size() >= 4) {
      std::vector<int64_t> stats(attrs.dims.begin(), attrs.dims.end() - 3);  // [batch..., Sq]
      out[1] = ShapeFromDims(stats);
    }
    return out;
  }
  AMP_RETURN_IF_ERROR(CheckPlainDims(c));
  const auto &q = c.input_shape(0), &k = c.input_shape(1), &v = c.input_shape(2);
  if (!q || !k || !v) {
    if (IsGrad(n)) {
      out[0] = q;
      out[2] = v;
    }
    return out;
  }
  size_t r = q->size();
  bool tb = n.GetInt("transB", 1) != 0;
  Shape batch(q->begin(), q->end() - 2);
  Dim sk = tb ? (*k)[r - 2] : k->back();
  if (!IsGrad(n)) {
    out[0] = batch;
    out[0]->push_back((*q)[r - 2]);
    out[0]->push_back(v->back());
    if (n.num_outputs() > 1) out[1] = Shape(q->begin(), q->end() - 1);  // the stats
    return out;
  }
  bool trans = n.GetInt("dk_trans", 0) != 0;
  out[0] = *q;
  out[1] = batch;
  out[1]->push_back(trans ? q->back() : sk);
  out[1]->push_back(trans ? sk : q->back());
  out[2] = *v;
  return out;
}

Status InferAttention(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1, 2}));
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  AMP_ASSIGN_OR_RETURN(DType type, OutType(c, "out_type", 0, c.input_dtype(2)));
  AMP_ASSIGN_OR_RETURN(auto shapes, OutputShapes(c));
  c.SetOutput(0, type, shapes[0]);
  if (c.num_outputs() > 1) c.SetOutput(1, DType::kFloat32, shapes[1]);
  return Status::Ok();
}

// AttentionGrad's inputs 5 and 6: the forward's O and its statistics, both
// or neither.
Status CheckForwardInputs(Ctx& c) {
  bool o = c.has_input(5), stats = c.has_input(6);
  if (!o && !stats) return Status::Ok();
  if (!o || !stats) return c.Error("reads the forward's O and stats together, or neither");
  AMP_RETURN_IF_ERROR(RequireFloat(c, 5));
  if (c.input_dtype(6) != DType::kFloat32)
    return c.Error("the forward's stats (input 6) must be float32, not ",
                   DTypeName(c.input_dtype(6)));
  const auto& st = c.input_shape(6);
  const auto& q = c.input_shape(0);
  if (!st) return Status::Ok();
  std::optional<Shape> want;
  if (IsViewForm(c.node())) {
    std::vector<int64_t> d = c.node().GetInts("dims");
    if (d.size() >= 4) want = ShapeFromDims(std::vector<int64_t>(d.begin(), d.end() - 3));
  } else if (q && !q->empty()) {
    want = Shape(q->begin(), q->end() - 1);
  }
  bool fits = want && want->size() == st->size();
  for (size_t i = 0; fits && i < st->size(); ++i)
    fits =
        !(*st)[i].is_static() || !(*want)[i].is_static() || (*st)[i].value() == (*want)[i].value();
  if (want && !fits)
    return c.Error("the forward's stats are ", ShapeToString(*st), ", not [batch..., Sq] ",
                   ShapeToString(*want));
  return Status::Ok();
}

Status InferAttentionGrad(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1, 2, 3}));
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  if (c.num_outputs() == 2) return c.Error("has dq, dk and dv, or one packed gradient");
  if (c.num_outputs() == 1 && !IsViewForm(c.node()))
    return c.Error("has one output only in the view form");
  AMP_RETURN_IF_ERROR(CheckForwardInputs(c));
  AMP_ASSIGN_OR_RETURN(auto shapes, OutputShapes(c));
  if (c.num_outputs() == 1) {
    AMP_ASSIGN_OR_RETURN(DType t, OutType(c, "out_types", 0, c.input_dtype(0)));
    for (size_t i = 1; i < 3 && c.node().GetInts("out_types").size() > i; ++i) {
      AMP_ASSIGN_OR_RETURN(DType other, OutType(c, "out_types", i, t));
      if (other != t) return c.Error("a packed gradient has one type: out_types differ");
    }
    c.SetOutput(0, t, shapes[0]);
    return Status::Ok();
  }
  for (size_t i = 0; i < 3; ++i) {
    AMP_ASSIGN_OR_RETURN(DType t, OutType(c, "out_types", i, c.input_dtype(i)));
    c.SetOutput(i, t, shapes[i]);
  }
  return Status::Ok();
}

// Multiply-adds times two of one (Sq x Sk) attention over every slice, for
// the product with D columns and the one with Dv columns.
struct Products {
  int64_t qk = 0, pv = 0;
};
Products AttentionProducts(const Node& n) {
  std::vector<std::vector<int64_t>> dims;
  for (size_t i = 0; i < (IsGrad(n) ? 4u : 3u); ++i) {
    auto d = StaticDimsOf(n.input(i));
    if (!d) return {};
    dims.push_back(*d);
  }
  auto l = AttentionLayoutOf(AttentionAttrs::Of(n), dims);
  if (!l.ok()) return {};
  int64_t rows = l->slices * l->sq;
  return {2 * rows * l->sk * l->d, 2 * rows * l->sk * l->dv};
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

std::vector<int64_t> AttentionLayout::StatsShape() const {
  std::vector<int64_t> s = batch;
  s.push_back(sq);
  return s;
}

int64_t AttentionLayout::SliceOffset(const AttentionOperand& o, int64_t s) const {
  int64_t off = o.offset;
  for (size_t i = batch.size(); i-- > 0;) {
    off += (s % batch[i]) * o.batch_strides[i];
    s /= batch[i];
  }
  return off;
}

namespace {
// The attributes the layout reads, from the IR's node or a kernel's decoded
// copy (both answer the same calls).
template <typename Attrs>
AttentionAttrs AttrsFrom(const Attrs& n, size_t num_outputs, bool reads_forward) {
  AttentionAttrs a;
  a.grad = n.op_type() == "AttentionGrad";
  a.describe = n.Describe();
  a.num_outputs = num_outputs;
  a.stats = !a.grad && num_outputs == 2;
  a.forward = a.grad && reads_forward;
  a.has_views = n.HasAttr("views");
  a.dims = n.GetInts("dims");
  a.views = n.GetInts("views");
  a.out_shapes = n.GetInts("out_shapes");
  a.trans_b = n.GetInt("transB", 1);
  a.alpha = n.GetFloat("alpha", 1.0f);
  a.grad_alpha = n.GetFloat("grad_alpha", a.alpha);
  a.dk_trans = n.GetInt("dk_trans", 0);
  return a;
}
}  // namespace

AttentionAttrs AttentionAttrs::Of(const Node& n) {
  return AttrsFrom(n, n.num_outputs(), n.num_inputs() > 5 && n.input(5));
}

AttentionAttrs AttentionAttrs::Of(const KernelAttrs& n, size_t num_outputs, bool reads_forward) {
  return AttrsFrom(n, num_outputs, reads_forward);
}

StatusOr<AttentionLayout> AttentionLayoutOf(const AttentionAttrs& n,
                                            const std::vector<std::vector<int64_t>>& input_dims) {
  return n.has_views ? ViewLayout(n, input_dims) : PlainLayout(n, input_dims);
}

// The (size, stride) pairs of a gradient operand over the whole output:
// the batch dims, then rows and columns.
std::vector<std::pair<int64_t, int64_t>> OperandDims(const AttentionLayout& l,
                                                     const AttentionOperand& op, int64_t rows,
                                                     int64_t cols) {
  std::vector<std::pair<int64_t, int64_t>> d;
  for (size_t i = 0; i < l.batch.size(); ++i) d.emplace_back(l.batch[i], op.batch_strides[i]);
  d.emplace_back(rows, op.row);
  d.emplace_back(cols, op.col);
  return d;
}

// True when views of one shape and strides at offsets 0, s, 2s, ... are
// together one dense row-major-in-some-order tensor of `numel` elements:
// the dims (with one of size m = the number of views and stride s), sorted
// by stride, are a mixed radix from 1 (the packed QKV case, cheaply).
bool ProvablyTiled(std::vector<std::pair<int64_t, int64_t>> dims, std::vector<int64_t> offsets,
                   int64_t numel) {
  std::sort(offsets.begin(), offsets.end());
  if (offsets.empty() || offsets[0] != 0) return false;
  if (offsets.size() > 1) {
    int64_t s = offsets[1];
    for (size_t i = 0; i < offsets.size(); ++i)
      if (offsets[i] != static_cast<int64_t>(i) * s) return false;
    dims.emplace_back(static_cast<int64_t>(offsets.size()), s);
  }
  std::erase_if(dims, [](const auto& d) { return d.first == 1; });
  std::sort(dims.begin(), dims.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  int64_t expect = 1;
  for (const auto& [size, stride] : dims) {
    if (stride != expect) return false;
    expect *= size;
  }
  return expect == numel;
}

StatusOr<bool> AttentionOutputTiled(const AttentionAttrs& n, const AttentionLayout& l, int out) {
  if (!l.views) return true;
  int64_t numel = Numel(l.out_shapes.at(out));
  bool grad = n.grad;
  // The cheap proof first: views of one layout at evenly spaced offsets.
  {
    std::vector<std::pair<int64_t, int64_t>> shape;
    std::vector<int64_t> offsets;
    bool same = true;
    for (size_t o = grad ? kAttnDQ : kAttnO; o < l.operands.size(); ++o) {
      const AttentionOperand& op = l.operands[o];
      if (op.tensor != out) continue;
      bool query_rows = grad ? o == kAttnDQ : true, dv_cols = grad ? o == kAttnDV : true;
      auto d = OperandDims(l, op, query_rows ? l.sq : l.sk, dv_cols ? l.dv : l.d);
      same = same && (shape.empty() || d == shape);
      shape = d;
      offsets.push_back(op.offset);
    }
    if (same && ProvablyTiled(shape, offsets, numel)) return true;
  }
  std::vector<bool> seen(static_cast<size_t>(numel), false);
  int64_t covered = 0;
  for (size_t o = grad ? kAttnDQ : kAttnO; o < l.operands.size(); ++o) {
    const AttentionOperand& op = l.operands[o];
    if (op.tensor != out) continue;
    bool query_rows = grad ? o == kAttnDQ : true, dv_cols = grad ? o == kAttnDV : true;
    int64_t rows = query_rows ? l.sq : l.sk, cols = dv_cols ? l.dv : l.d;
    for (int64_t s = 0; s < l.slices; ++s) {
      int64_t base = l.SliceOffset(op, s);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          size_t at = static_cast<size_t>(base + r * op.row + c * op.col);
          if (seen[at])
            return InvalidArgument(n.describe, ": the views written into output ", out,
                                   " overlap at element ", at);
          seen[at] = true;
          ++covered;
        }
    }
  }
  return covered == static_cast<int64_t>(seen.size());
}

namespace {

// The batch dims of every operand folded into at most two, [b, h]: size-1
// dims dropped, then neighbours merged where every operand's strides allow
// it (stride[i] == stride[i+1] * size[i+1]). False when more than two stay.
bool FoldBatch(std::vector<int64_t>& sizes, std::vector<std::vector<int64_t>*> strides) {
  for (size_t i = sizes.size(); i-- > 0;)
    if (sizes[i] == 1) {
      sizes.erase(sizes.begin() + static_cast<std::ptrdiff_t>(i));
      for (auto* s : strides) s->erase(s->begin() + static_cast<std::ptrdiff_t>(i));
    }
  for (size_t i = 0; sizes.size() > 2 && i + 1 < sizes.size();) {
    bool ok = true;
    for (auto* s : strides) ok = ok && (*s)[i] == (*s)[i + 1] * sizes[i + 1];
    if (!ok) {
      ++i;
      continue;
    }
    sizes[i] *= sizes[i + 1];
    sizes.erase(sizes.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    for (auto* s : strides) {
      (*s)[i] = (*s)[i + 1];
      s->erase(s->begin() + static_cast<std::ptrdiff_t>(i) + 1);
    }
  }
  return sizes.size() <= 2;
}

}  // namespace

StatusOr<CudnnAttentionLayout> CudnnAttentionLayoutOf(const AttentionAttrs& n,
                                                      const AttentionLayout& l,
                                                      const AttentionTypes& types) {
  auto no = [&](const auto&... why) -> Status {
    return Unimplemented(n.describe, ": not cuDNN's fused attention: ", why...);
  };
  if (n.grad && !n.forward) return no("the backward does not read the forward's O and stats");
  if (n.grad && n.grad_alpha != n.alpha) return no("a gradient scale other than the scores'");
  if (types.inputs.empty()) return no("no input types");
  const DType t = types.inputs[0];
  if (t != DType::kFloat16 && t != DType::kBFloat16) return no("q is not float16 or bfloat16");
  const size_t operand_inputs[] = {0, 1, 2, 3, 5};  // q, k, v, dO, the forward's O
  for (size_t i : operand_inputs) {
    if (i == 3 && !n.grad) continue;
    if (i == 5 && !n.forward) continue;
    if (i >= types.inputs.size() || types.inputs[i] != t) return no("operands of other types");
  }
  for (size_t o = 0; o < types.outputs.size(); ++o) {
    bool stats_out = n.stats && o == 1;
    if (types.outputs[o] != (stats_out ? DType::kFloat32 : t)) return no("outputs of other types");
  }
  if (n.forward && (types.inputs.size() < 7 || types.inputs[6] != DType::kFloat32))
    return no("the forward's stats are not float32");
  if (l.d % 8 || l.dv % 8 || l.d > 128 || l.dv > 128 || l.d == 0 || l.dv == 0)
    return no("head dims ", l.d, " and ", l.dv, " (cuDNN takes multiples of 8 up to 128)");
  if (l.sq == 0 || l.sk == 0) return no("no rows");
  // The batch dims of every operand, and of the mask's broadcast.
  std::vector<int64_t> sizes = l.batch;
  std::vector<std::vector<int64_t>> strides;
  for (const AttentionOperand& o : l.operands) strides.push_back(o.batch_strides);
  std::vector<int64_t> mask;
  if (types.mask_dims) {
    std::vector<int64_t> scores = l.batch;
    scores.push_back(l.sq);
    scores.push_back(l.sk);
    mask = BroadcastStrides(*types.mask_dims, scores);
    if (mask[mask.size() - 1] != 1 || mask[mask.size() - 2] == 0)
      return no("a mask that does not vary along the queries, or has strided keys");
    if (l.sk % 8 || mask[mask.size() - 2] % 8) return no("a mask of unaligned rows");
    if (types.inputs.size() <= static_cast<size_t>(n.grad ? 4 : 3) ||
        types.inputs[n.grad ? 4 : 3] != t)
      return no("a mask not of q's type");
    // Broadcast batch dims stay as dims of stride 0 (size 1 for cuDNN).
    strides.push_back(std::vector<int64_t>(mask.begin(), mask.end() - 2));
  }
  std::vector<std::vector<int64_t>*> ptrs;
  for (auto& s : strides) ptrs.push_back(&s);
  if (!FoldBatch(sizes, ptrs)) return no("batch dims that do not fold into two");
  while (sizes.size() < 2) {
    sizes.insert(sizes.begin(), 1);
    for (auto* s : ptrs) s->insert(s->begin(), 0);
  }
  CudnnAttentionLayout c;
  c.b = sizes[0];
  c.h = sizes[1];
  c.sq = l.sq;
  c.sk = l.sk;
  c.d = l.d;
  c.dv = l.dv;
  for (size_t o = 0; o < l.operands.size(); ++o) {
    const AttentionOperand& op = l.operands[o];
    bool query_rows =
        o == kAttnQ || o == kAttnFwdO || (n.grad ? (o == kAttnDO || o == kAttnDQ) : o == kAttnO);
    bool dv_cols =
        o == kAttnV || o == kAttnFwdO || (n.grad ? (o == kAttnDO || o == kAttnDV) : o == kAttnO);
    if (op.col != 1) return no("an operand with strided columns");
    if (op.offset % 8 || op.row % 8) return no("an operand of unaligned rows");
    BhsdTensor b;
    b.tensor = op.tensor;
    b.offset = op.offset;
    b.dims[0] = c.b;
    b.dims[1] = c.h;
    b.dims[2] = query_rows ? l.sq : l.sk;
    b.dims[3] = dv_cols ? l.dv : l.d;
    b.strides[2] = op.row;
    b.strides[3] = 1;
    // (A size-1 dim's stride is any: the one spanning the dims inside it.)
    b.strides[1] = sizes[1] == 1 ? b.dims[2] * b.strides[2] : strides[o][1];
    b.strides[0] = sizes[0] == 1 ? c.h * b.strides[1] : strides[o][0];
    if (b.strides[0] % 8 || b.strides[1] % 8) return no("an operand of unaligned slices");
    c.operands.push_back(b);
  }
  if (types.mask_dims) {
    const std::vector<int64_t>& ms = strides.back();
    c.has_bias = true;
    c.bias.tensor = n.grad ? 4 : 3;
    c.bias.dims[0] = ms[0] == 0 ? 1 : c.b;
    c.bias.dims[1] = ms[1] == 0 ? 1 : c.h;
    c.bias.dims[2] = l.sq;
    c.bias.dims[3] = l.sk;
    c.bias.strides[3] = 1;
    c.bias.strides[2] = mask[mask.size() - 2];
    c.bias.strides[1] = ms[1] == 0 ? l.sq * c.bias.strides[2] : ms[1];
    c.bias.strides[0] = ms[0] == 0 ? c.bias.dims[1] * c.bias.strides[1] : ms[0];
  }
  c.stats.tensor = n.grad ? 6 : 1;
  c.stats.dims[0] = c.b;
  c.stats.dims[1] = c.h;
  c.stats.dims[2] = l.sq;
  c.stats.strides[0] = c.h * l.sq;
  c.stats.strides[1] = l.sq;
  c.stats.strides[2] = 1;
  return c;
}

bool RunsAsCudnnAttention(const Node& n) {
  if (n.domain() != "ai.amp" || (n.op_type() != "Attention" && n.op_type() != "AttentionGrad"))
    return false;
  AttentionAttrs attrs = AttentionAttrs::Of(n);
  AttentionTypes types;
  std::vector<std::vector<int64_t>> dims;
  std::optional<std::vector<int64_t>> mask;
  for (size_t i = 0; i < n.num_inputs(); ++i) {
    const Value* v = n.input(i);
    types.inputs.push_back(v ? v->dtype() : DType::kUndefined);
    std::optional<std::vector<int64_t>> d;
    if (v) {
      d = StaticDimsOf(v);
      if (!d) return false;
    }
    dims.push_back(d ? *d : std::vector<int64_t>{});
    if (v && i == (attrs.grad ? 4u : 3u)) mask = *d;
  }
  for (const Value* v : n.outputs()) types.outputs.push_back(v ? v->dtype() : DType::kUndefined);
  if (mask) types.mask_dims = &*mask;
  auto l = AttentionLayoutOf(attrs, dims);
  return l.ok() && CudnnAttentionLayoutOf(attrs, *l, types).ok();
}

std::vector<OpDef> AttentionOps() {
  return {
      {.domain = "ai.amp",
       .op_type = "Attention",
       .arity = {3, 4, 1, 2},
       .infer = InferAttention,
       .precision = {OpClass::kNone, "made by fuse-attention at specialization, after precision"},
       .no_grad = "made by fuse-attention after autodiff: never differentiated",
       .vector_flops = FlopsAttention,
       .cuda_library = RunsAsCudnnAttention},
      {.domain = "ai.amp",
       .op_type = "AttentionGrad",
       .arity = {4, 7, 1, 3},
       .infer = InferAttentionGrad,
       .precision = {OpClass::kNone, "made by fuse-attention at specialization, after precision"},
       .no_grad = "made by fuse-attention after autodiff: never differentiated",
       .vector_flops = FlopsAttentionGrad,
       .launches = 2,
       // cuDNN's flash backward: rowsum(dO * O), the main kernel, and dq
       // from its FP32 accumulation (to confirm with nsys on a GPU).
       .cuda_library = RunsAsCudnnAttention,
       .cuda_library_launches = 3},
  };
}

}  // namespace amp
