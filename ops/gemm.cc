// Matrix products: MatMul, Gemm, Einsum.
//
// Each op's facts in one record (ops/op_def.h): arity, type and shape
// inference, precision class, shape-like inputs, gradient rule or why there
// is none. Kernels are the backends' (kernels/cpu, kernels/cuda).
#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <set>

#include "compiler/const_eval.h"
#include "ops/families.h"
#include "ops/grad_builder.h"
#include "ops/infer_util.h"

namespace amp {
namespace {

using Ctx = InferenceContext;
using G = GradBuilder;

// ---- type and shape inference ----

// ai.amp MatMulT's epilogue (fuse-gemm-epilogue; what cuBLASLt's epilogues
// compute in the GEMM's own kernel):
//   input 2, bias [N]    : added to the FP32 accumulation of every row
//   activation = "relu"  : applied after the bias, before the store
//   bias_grad = "A"      : output 1 [M], the sums of op(A) over the reduction
//                          axis k, accumulated in FP32 or wider, stored in out_type
//   bias_grad = "B"      : output 1 [N], the same of op(B)
//   relu_mask = 1        : with relu, output 1 the ReLU's bit mask (uint8
//                          [M, L / 8], L = N rounded up to 128; bit j of row i
//                          at bit i * L + j, LSB first: the stored result > 0),
//                          cuBLASLt's RELU_AUX layout
//   activation = "drelu" : input 3 such a mask; the result is kept where its
//                          bit is set, else 0 (ReLU's gradient, DRELU)
// Bias and activation need one matrix as B (the product is one 2-D GEMM
// over A's rows, M of them); bias_grad needs both operands 2-D.
Status InferEpilogue(Ctx& c, const Shape& a, const Shape& b, const Shape& out, DType out_type) {
  const Node& n = c.node();
  bool bias = c.has_input(2);
  std::string act = n.GetString("activation", "");
  std::string grad_of = n.GetString("bias_grad", "");
  bool bias_grad = !grad_of.empty();
  if (bias_grad && grad_of != "A" && grad_of != "B")
    return c.Error("bias_grad is \"A\" or \"B\" (the operand summed), not '", grad_of, "'");
  if (!act.empty() && act != "relu" && act != "drelu")
    return c.Error("activation '", act, "' is not one amp runs in a GEMM epilogue (relu, drelu)");
  bool relu_mask = n.GetInt("relu_mask", 0) != 0;
  if (relu_mask && (act != "relu" || bias_grad))
    return c.Error("relu_mask needs activation relu and no bias_grad");
  if ((act == "drelu") != c.has_input(3))
    return c.Error(act == "drelu" ? "drelu needs the forward's mask as input 3"
                                  : "input 3 (a ReLU mask) needs activation drelu");
  // The mask's shape: the product's rows, and its columns' bits in bytes.
  Shape mask_shape;
  {
    Dim rows(1);
    for (size_t i = 0; i + 1 < out.size(); ++i)
      rows = rows.is_static() && out[i].is_static() ? Dim(rows.value() * out[i].value()) : Dim();
    const Dim& cols = out.back();
    mask_shape = {rows, cols.is_static() ? Dim((cols.value() + 127) / 128 * 16) : Dim()};
  }
  if (act == "drelu") {
    const auto& ms = c.input_shape(3);
    if (c.input_dtype(3) != DType::kUInt8 || (ms && StaticDims(*ms) && StaticDims(mask_shape) &&
                                              *StaticDims(*ms) != *StaticDims(mask_shape)))
      return c.Error("the ReLU mask must be uint8 ", ShapeToString(mask_shape));
  }
  if ((bias || !act.empty()) && (b.size() != 2 || (n.GetInt("transA", 0) != 0 && a.size() != 2)))
    return c.Error("a bias or activation needs B 2-D (and A 2-D when transposed), not ",
                   ShapeToString(a), " x ", ShapeToString(b));
  if (bias) {
    const auto& bs = c.input_shape(2);
    if (c.input_dtype(2) != out_type)
      return c.Error("bias has type ", DTypeName(c.input_dtype(2)), ", the output ",
                     DTypeName(out_type));
    if (bs && (bs->size() != 1 || ((*bs)[0].is_static() && out.back().is_static() &&
                                   (*bs)[0].value() != out.back().value())))
      return c.Error("bias ", ShapeToString(*bs), " is not one value per output column of ",
                     ShapeToString(out));
  }
  if ((bias_grad || relu_mask) != (c.num_outputs() == 2))
    return c.Error(bias_grad || relu_mask ? "bias_grad and relu_mask need a second output"
                                          : "a second output needs bias_grad or relu_mask");
  if (relu_mask) c.SetOutput(1, DType::kUInt8, mask_shape);
  if (bias_grad) {
    if (a.size() != 2 || b.size() != 2)
      return c.Error("bias_grad needs 2-D operands, not ", ShapeToString(a), " x ",
                     ShapeToString(b));
    c.SetOutput(1, out_type, Shape{grad_of == "A" ? out[0] : out[1]});
  }
  return Status::Ok();
}

Status InferMatMul(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1}));
  const auto& a = c.input_shape(0);
  const auto& b = c.input_shape(1);
  if (!a || !b) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    if (c.num_outputs() > 1) c.SetOutput(1, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  if (a->empty() || b->empty()) return c.Error("MatMul inputs must have rank >= 1");
  Shape sa = *a, sb = *b;
  // ai.amp MatMulT: an operand read with its last two axes swapped.
  bool ta = c.node().GetInt("transA", 0) != 0, tb = c.node().GetInt("transB", 0) != 0;
  if ((ta && sa.size() < 2) || (tb && sb.size() < 2))
    return c.Error("transA/transB need an operand of rank >= 2");
  if (ta) std::swap(sa[sa.size() - 1], sa[sa.size() - 2]);
  if (tb) std::swap(sb[sb.size() - 1], sb[sb.size() - 2]);
  bool va = sa.size() == 1, vb = sb.size() == 1;
  if (va) sa.insert(sa.begin(), Dim(1));
  if (vb) sb.push_back(Dim(1));
  const Dim& k1 = sa.back();
  const Dim& k2 = sb[sb.size() - 2];
  if (k1.is_static() && k2.is_static() && k1.value() != k2.value())
    return c.Error("inner dims differ: ", ShapeToString(*a), " x ", ShapeToString(*b));
  Shape batch_a(sa.begin(), sa.end() - 2), batch_b(sb.begin(), sb.end() - 2);
  Shape out;
  size_t n = std::max(batch_a.size(), batch_b.size());
  batch_a.insert(batch_a.begin(), n - batch_a.size(), Dim(1));
  batch_b.insert(batch_b.begin(), n - batch_b.size(), Dim(1));
  for (size_t i = 0; i < n; ++i) {
    AMP_ASSIGN_OR_RETURN(Dim d, BroadcastDim(c, batch_a[i], batch_b[i]));
    out.push_back(d);
  }
  if (!va) out.push_back(sa[sa.size() - 2]);
  if (!vb) out.push_back(sb.back());
  // ai.amp MatMulT may store its FP32 accumulation in another float type
  // (fold-into-gemm: a Cast of the product).
  DType out_type = c.input_dtype(0);
  if (c.node().domain() == "ai.amp" && c.node().HasAttr("out_type")) {
    out_type = static_cast<DType>(c.node().GetInt("out_type", 0));
    if (!IsFloat(out_type) || !IsFloat(c.input_dtype(0)))
      return c.Error("out_type ", c.node().GetInt("out_type", 0),
                     " needs float inputs and a float type");
  }
  c.SetOutput(0, out_type, out);
  if (c.node().domain() == "ai.amp") AMP_RETURN_IF_ERROR(InferEpilogue(c, *a, *b, out, out_type));
  return Status::Ok();
}

Status InferGemm(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1, 2}));
  const auto& a = c.input_shape(0);
  const auto& b = c.input_shape(1);
  if (!a || !b) {
    c.SetOutput(0, c.input_dtype(0), Shape{Dim(), Dim()});
    return Status::Ok();
  }
  if (a->size() != 2 || b->size() != 2) return c.Error("Gemm inputs A and B must be 2-D");
  bool ta = c.node().GetInt("transA", 0) != 0, tb = c.node().GetInt("transB", 0) != 0;
  Dim m = (*a)[ta ? 1 : 0], ka = (*a)[ta ? 0 : 1];
  Dim kb = (*b)[tb ? 1 : 0], n = (*b)[tb ? 0 : 1];
  if (ka.is_static() && kb.is_static() && ka.value() != kb.value())
    return c.Error("inner dims differ: A is ", ShapeToString(*a), ", B is ", ShapeToString(*b));
  Shape out{m, n};
  if (c.has_input(2) && c.input_shape(2)) {  // C must broadcast to [M, N]
    const Shape& cs = *c.input_shape(2);
    if (cs.size() > 2) return c.Error("Gemm input C must have rank <= 2");
    for (size_t k = 0; k < cs.size(); ++k) {
      const Dim& d = cs[k];
      const Dim& o = out[2 - cs.size() + k];
      if (d.is_static() && o.is_static() && d.value() != 1 && d.value() != o.value())
        return c.Error("input C of shape ", ShapeToString(cs), " does not broadcast to ",
                       ShapeToString(out));
    }
  }
  c.SetOutput(0, c.input_dtype(0), out);
  return Status::Ok();
}

// Parses "ij,jk->ik" and computes the output shape.
// An Einsum equation's left-hand side split at its commas: one term per
// operand.
std::vector<std::string> EinsumTerms(const std::string& lhs) {
  std::vector<std::string> terms;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    terms.push_back(lhs.substr(start, comma - start));
    if (comma == std::string::npos) return terms;
    start = comma + 1;
  }
}

Status InferEinsum(Ctx& c) {
  std::string eq = c.node().GetString("equation", "");
  eq.erase(std::remove(eq.begin(), eq.end(), ' '), eq.end());
  std::string lhs = eq, rhs;
  bool explicit_out = false;
  if (auto p = eq.find("->"); p != std::string::npos) {
    lhs = eq.substr(0, p);
    rhs = eq.substr(p + 2);
    explicit_out = true;
  }
  std::vector<std::string> terms = EinsumTerms(lhs);
  if (terms.size() != c.num_inputs())
    return c.Error("equation '", eq, "' does not match the inputs");
  std::map<char, Dim> dims;
  std::map<char, int> counts;
  Shape ellipsis;
  for (size_t i = 0; i < terms.size(); ++i) {
    const auto& s = c.input_shape(i);
    if (!s) {
      c.SetOutput(0, c.input_dtype(0), std::nullopt);
      return Status::Ok();
    }
    std::string t = terms[i];
    size_t ell = t.find("...");
    size_t letters = t.size() - (ell == std::string::npos ? 0 : 3);
    if (ell == std::string::npos ? letters != s->size() : letters > s->size())
      return c.Error("term '", t, "' does not match input rank ", s->size());
    size_t ell_rank = s->size() - letters;
    size_t d = 0;
    for (size_t k = 0; k < t.size(); ++k) {
      if (t.compare(k, 3, "...") == 0) {
        Shape e(s->begin() + d, s->begin() + d + ell_rank);
        if (e.size() > ellipsis.size())
          ellipsis.insert(ellipsis.begin(), e.size() - ellipsis.size(), Dim(1));
        for (size_t q = 0; q < e.size(); ++q) {
          size_t o = ellipsis.size() - e.size() + q;
          AMP_ASSIGN_OR_RETURN(ellipsis[o], BroadcastDim(c, ellipsis[o], e[q]));
        }
        d += ell_rank;
        k += 2;
        continue;
      }
      char ch = t[k];
      const Dim& dim = (*s)[d++];
      ++counts[ch];
      if (!dims.count(ch) || (dims[ch].is_static() && dims[ch].value() == 1)) dims[ch] = dim;
    }
  }
  if (!explicit_out) {
    if (lhs.find("...") != std::string::npos) rhs = "...";
    for (const auto& [ch, n] : counts)
      if (n == 1) rhs += ch;
  }
  Shape out;
  for (size_t k = 0; k < rhs.size(); ++k) {
    if (rhs.compare(k, 3, "...") == 0) {
      out.insert(out.end(), ellipsis.begin(), ellipsis.end());
      k += 2;
      continue;
    }
    if (!dims.count(rhs[k])) return c.Error("output letter '", rhs[k], "' is not in any input");
    out.push_back(dims[rhs[k]]);
  }
  c.SetOutput(0, c.input_dtype(0), out);
  return Status::Ok();
}

// ---- gradients ----

Status GradGemm(G& b) {
  bool ta = b.node().GetInt("transA", 0) != 0, tb = b.node().GetInt("transB", 0) != 0;
  float alpha = b.node().GetFloat("alpha", 1.0f), beta = b.node().GetFloat("beta", 1.0f);
  Value* dy = b.dy(0);
  b.dx.assign(b.node().num_inputs(), nullptr);
  auto gemm = [&](Value* p, Value* q, bool t1, bool t2) {
    Node* n = b.Make("Gemm", {p, q});
    if (t1) n->SetAttr("transA", Attribute::Int(1));
    if (t2) n->SetAttr("transB", Attribute::Int(1));
    if (alpha != 1.0f) n->SetAttr("alpha", Attribute::Float(alpha));
    return n->output(0);
  };
  if (b.wants(0)) b.dx[0] = ta ? gemm(b.x(1), dy, tb, true) : gemm(dy, b.x(1), false, !tb);
  if (b.wants(1)) b.dx[1] = tb ? gemm(dy, b.x(0), true, ta) : gemm(b.x(0), dy, !ta, false);
  if (b.node().num_inputs() > 2 && b.wants(2)) {
    Value* g = beta == 1.0f ? dy : b.Op("Mul", {dy, b.Scalar(beta, b.y(0)->dtype())});
    AMP_ASSIGN_OR_RETURN(b.dx[2], b.ReduceTo(g, ShapeOrDie(b.y(0)), b.x(2)));
  }
  return Status::Ok();
}

Status GradMatMul(G& b) {
  const Shape& a = ShapeOrDie(b.x(0));
  const Shape& w = ShapeOrDie(b.x(1));
  if (a.size() < 2 || w.size() < 2)
    return Unimplemented(b.node().Describe(),
                         ": the gradient of MatMul with a 1-D input is not supported");
  auto swap_last = [&](Value* v, size_t rank) {
    std::vector<int64_t> perm;
    for (size_t k = 0; k + 2 < rank; ++k) perm.push_back(static_cast<int64_t>(k));
    perm.push_back(static_cast<int64_t>(rank - 1));
    perm.push_back(static_cast<int64_t>(rank - 2));
    return b.Transpose(v, perm);
  };
  const Shape& out = ShapeOrDie(b.y(0));
  b.dx.assign(2, nullptr);
  if (b.wants(0)) {
    Value* g = b.Op("MatMul", {b.dy(0), swap_last(b.x(1), w.size())});
    Shape gshape = out;
    gshape.back() = a.back();
    AMP_ASSIGN_OR_RETURN(b.dx[0], b.ReduceTo(g, gshape, b.x(0)));
  }
  // A 2-D weight under an N-D input (a Linear layer on [batch, seq, K]): its
  // gradient is one 2-D GEMM over the flattened leading dims, x2ᵀ · dy2 with
  // x2 = [rows, K], dy2 = [rows, N], instead of a batched outer product of
  // [..., K, N] reduced afterwards (rows times the weight's size).
  if (b.wants(1) && w.size() == 2 && a.size() > 2 && w[0].is_static() && w[1].is_static()) {
    Value* x2 = b.Op("Reshape", {b.x(0), b.Ints({-1, w[0].value()})});
    Value* dy2 = b.Op("Reshape", {b.dy(0), b.Ints({-1, w[1].value()})});
    Node* gemm = b.Make("Gemm", {x2, dy2});
    gemm->SetAttr("transA", Attribute::Int(1));
    b.dx[1] = gemm->output(0);
    return Status::Ok();
  }
  if (b.wants(1)) {
    Value* g = b.Op("MatMul", {swap_last(b.x(0), a.size()), b.dy(0)});
    Shape gshape = out;
    gshape[gshape.size() - 2] = a.back();
    AMP_ASSIGN_OR_RETURN(b.dx[1], b.ReduceTo(g, gshape, b.x(1)));
  }
  return Status::Ok();
}

// ---- cost ----

int64_t FlopsMatMul(const Node& n) {
  const Value* x = n.input(0);
  const auto a = x->type().shape ? StaticDims(*x->type().shape) : std::nullopt;
  if (!a) return 0;
  bool ta = n.GetInt("transA", 0) != 0 && a->size() >= 2;
  int64_t k = a->empty() ? 1 : ta ? (*a)[a->size() - 2] : a->back();
  return 2 * StaticNumel(*n.output(0)) * k;
}

int64_t FlopsGemm(const Node& n) {
  const Value* x = n.input(0);
  const auto a = x->type().shape ? StaticDims(*x->type().shape) : std::nullopt;
  if (!a) return 0;
  int64_t k = a->size() == 2 ? (*a)[n.GetInt("transA", 0) ? 0 : 1] : 1;
  return 2 * StaticNumel(*n.output(0)) * k;
}

// An equation with ellipses rewritten with explicit letters for the
// ellipsis dims ("...ij,jk->...ik" for rank-4 operands: "ABij,jk->ABik"), so
// that the gradient's einsums need no ellipses. Right-aligned, as Einsum
// broadcasts them; an operand whose ellipsis dim is 1 where the output's is
// larger (a broadcast that the gradient would have to sum) is refused.
StatusOr<std::string> SpellOutEllipses(G& b, const std::string& eq) {
  const Node& n = b.node();
  const size_t arrow = eq.find("->");
  if (arrow == std::string::npos)
    return Unimplemented(n.Describe(),
                         ": Einsum's gradient takes ellipses only with an explicit "
                         "output ('",
                         eq, "')");
  const std::string lhs = eq.substr(0, arrow), out = eq.substr(arrow + 2);
  std::vector<std::string> terms = EinsumTerms(lhs);
  if (terms.size() != n.num_inputs())
    return InvalidArgument(n.Describe(), ": equation '", eq, "' does not match the inputs");
  auto ell_dims = [](const std::string& t, size_t rank) -> int64_t {
    return t.find("...") == std::string::npos
               ? 0
               : static_cast<int64_t>(rank) - static_cast<int64_t>(t.size() - 3);
  };
  const Shape& ys = ShapeOrDie(b.y(0));
  const int64_t e_out = ell_dims(out, ys.size());
  if (out.find("...") == std::string::npos)
    return Unimplemented(n.Describe(), ": Einsum's gradient takes ellipses only when the output ",
                         "keeps them ('", eq, "')");
  std::string fresh;
  for (char ch = 'A'; ch <= 'Z' && static_cast<int64_t>(fresh.size()) < e_out; ++ch)
    if (eq.find(ch) == std::string::npos) fresh.push_back(ch);
  if (static_cast<int64_t>(fresh.size()) < e_out)
    return Unimplemented(n.Describe(), ": too many ellipsis dims in '", eq, "'");
  const size_t y_at = out.find("...");
  auto spell = [&](const std::string& t, int64_t e) {
    size_t at = t.find("...");
    if (at == std::string::npos) return t;
    return t.substr(0, at) + fresh.substr(fresh.size() - static_cast<size_t>(e)) + t.substr(at + 3);
  };
  std::string result;
  for (size_t i = 0; i < terms.size(); ++i) {
    const Shape& xs = ShapeOrDie(b.x(i));
    int64_t e = ell_dims(terms[i], xs.size());
    if (e < 0 || e > e_out)
      return InvalidArgument(n.Describe(), ": operand ", i, "'s ellipsis does not fit '", eq, "'");
    const size_t x_at = terms[i].find("...");
    for (int64_t k = 0; k < e; ++k) {
      const Dim& xd = xs[x_at + static_cast<size_t>(k)];
      const Dim& yd = ys[y_at + static_cast<size_t>(e_out - e + k)];
      if (!xd.SameAs(yd))
        return Unimplemented(n.Describe(), ": Einsum's gradient needs operand ", i,
                             "'s ellipsis dims to equal the output's (a broadcast there would "
                             "have to be summed)");
    }
    result += (i ? "," : "") + spell(terms[i], e);
  }
  return result + "->" + spell(out, e_out);
}

// Einsum: operand i's gradient is the einsum of dy with the other operands
// into operand i's subscripts ("ij,jk->ik": dA = "ik,jk->ij" (dy, B)). A
// letter only operand i has (summed away in the forward) comes back by
// broadcasting dy's result over it. Ellipses are spelled out as letters
// first; a letter repeated within one operand (a diagonal) has no rule yet.
Status GradEinsum(G& b) {
  const Node& n = b.node();
  std::string eq = n.GetString("equation", "");
  eq.erase(std::remove(eq.begin(), eq.end(), ' '), eq.end());
  if (eq.find("...") != std::string::npos) {
    AMP_ASSIGN_OR_RETURN(eq, SpellOutEllipses(b, eq));
  }
  std::string lhs = eq, out;
  const size_t arrow = eq.find("->");
  if (arrow != std::string::npos) {
    lhs = eq.substr(0, arrow);
    out = eq.substr(arrow + 2);
  }
  std::vector<std::string> terms = EinsumTerms(lhs);
  if (terms.size() != n.num_inputs())
    return InvalidArgument(n.Describe(), ": equation '", eq, "' does not match the inputs");
  if (arrow == std::string::npos) {  // implicit: the letters seen once, in order
    std::map<char, int> count;
    for (const auto& t : terms)
      for (char ch : t) ++count[ch];
    for (const auto& [ch, k] : count)
      if (k == 1) out.push_back(ch);
  }
  b.dx.assign(n.num_inputs(), nullptr);
  for (size_t i = 0; i < terms.size(); ++i) {
    if (!b.wants(i)) continue;
    const std::string& ti = terms[i];
    std::set<char> seen, elsewhere(out.begin(), out.end());
    for (char ch : ti)
      if (!seen.insert(ch).second)
        return Unimplemented(n.Describe(),
                             ": Einsum's gradient does not take a letter repeated "
                             "within one operand ('",
                             ti, "') yet");
    std::string eq_i = out;
    std::vector<Value*> inputs = {b.dy(0)};
    for (size_t k = 0; k < terms.size(); ++k) {
      if (k == i) continue;
      eq_i += "," + terms[k];
      inputs.push_back(b.x(k));
      elsewhere.insert(terms[k].begin(), terms[k].end());
    }
    std::string kept;
    std::vector<int64_t> missing;
    for (size_t a = 0; a < ti.size(); ++a) {
      if (elsewhere.count(ti[a]))
        kept.push_back(ti[a]);
      else
        missing.push_back(static_cast<int64_t>(a));
    }
    Node* e = b.Make("Einsum", inputs);
    e->SetAttr("equation", Attribute::String(eq_i + "->" + kept));
    Value* g = e->output(0);
    if (!missing.empty())
      g = b.Op("Expand", {b.Op("Unsqueeze", {g, b.Ints(missing)}), b.ShapeOf(b.x(i))});
    b.dx[i] = g;
  }
  return Status::Ok();
}

}  // namespace

std::vector<OpDef> GemmOps() {
  return {
      {.op_type = "MatMul",
       .arity = {2, 2, 1, 1},
       .infer = InferMatMul,
       .precision = {OpClass::kHalf, "GEMM on tensor cores, FP32 accumulation"},
       .grad = GradMatMul,
       .matrix_flops = FlopsMatMul},
      {.op_type = "Gemm",
       .arity = {2, 3, 1, 1},
       .infer = InferGemm,
       .precision = {OpClass::kHalf, "GEMM on tensor cores, FP32 accumulation"},
       .grad = GradGemm,
       .matrix_flops = FlopsGemm},
      {.domain = "ai.amp",
       .op_type = "MatMulT",
       .arity = {2, 4, 1, 2},
       .infer = InferMatMul,
       .precision = {OpClass::kNone, "made by transpose-folding after precision was decided"},
       .no_grad = "made by transpose-folding and fold-into-gemm after autodiff: never "
                  "differentiated",
       .matrix_flops = FlopsMatMul},
      {.op_type = "Einsum",
       .arity = {1, -1, 1, 1},
       .infer = InferEinsum,
       .precision = {OpClass::kHalf, "contraction on tensor cores, FP32 accumulation"},
       .grad = GradEinsum},
  };
}

}  // namespace amp
