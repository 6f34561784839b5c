// Type and shape inference for every op amp supports, one function per op
// family, and the table that names them. Semantics follow the ONNX operator
// specification for opsets 13 and newer.
#include "compiler/op_registry.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>

#include "compiler/const_eval.h"

namespace amp {
namespace {

using Ctx = InferenceContext;

// ---------------- helpers ----------------

StatusOr<int64_t> NormalizeAxis(const Ctx& c, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    return c.Error("axis ", axis, " is out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

// Numpy-style broadcast of two dims; unknown when it cannot be decided.
StatusOr<Dim> BroadcastDim(const Ctx& c, const Dim& a, const Dim& b) {
  if (a.is_static() && a.value() == 1) return b;
  if (b.is_static() && b.value() == 1) return a;
  if (a.is_static() && b.is_static()) {
    if (a.value() != b.value())
      return c.Error("shapes cannot be broadcast: dim ", a.value(), " against ", b.value());
    return a;
  }
  if (a.SameAs(b)) return a;
  if (a.is_static()) return a;  // b must be a or 1; a != 1 here
  if (b.is_static()) return b;
  return Dim();
}

StatusOr<std::optional<Shape>> Broadcast(const Ctx& c, const std::vector<size_t>& inputs) {
  Shape out;
  for (size_t i : inputs) {
    if (!c.has_input(i)) continue;
    const auto& s = c.input_shape(i);
    if (!s) return std::optional<Shape>();
    if (s->size() > out.size()) out.insert(out.begin(), s->size() - out.size(), Dim(1));
    size_t off = out.size() - s->size();
    for (size_t k = 0; k < s->size(); ++k) {
      AMP_ASSIGN_OR_RETURN(out[off + k], BroadcastDim(c, out[off + k], (*s)[k]));
    }
  }
  return std::optional<Shape>(out);
}

std::optional<std::vector<int64_t>> ConstInts(const Ctx& c, size_t i) {
  if (!c.has_input(i)) return std::nullopt;
  const Tensor* t = c.constant(i);
  if (!t || !IsInteger(t->dtype())) return std::nullopt;
  std::vector<int64_t> v(t->num_elements());
  for (int64_t k = 0; k < t->num_elements(); ++k) v[k] = t->GetInt(k);
  return v;
}

Status RequireFloat(const Ctx& c, size_t i) {
  if (!IsFloat(c.input_dtype(i)))
    return c.Error("input ", i, " must be a floating-point tensor, not ",
                   DTypeName(c.input_dtype(i)));
  return Status::Ok();
}

// Input i, when present and of known shape, has exactly `rank` dims.
Status RequireRank(const Ctx& c, size_t i, size_t rank, const char* what) {
  if (!c.has_input(i) || !c.input_shape(i)) return Status::Ok();
  if (c.input_shape(i)->size() != rank)
    return c.Error(what, " (input ", i, ") must have rank ", rank, ", but has shape ",
                   ShapeToString(*c.input_shape(i)));
  return Status::Ok();
}

Status SameDType(const Ctx& c, const std::vector<size_t>& inputs) {
  DType t = DType::kUndefined;
  for (size_t i : inputs) {
    if (!c.has_input(i)) continue;
    DType d = c.input_dtype(i);
    if (t == DType::kUndefined)
      t = d;
    else if (d != t)
      return c.Error("inputs must have one element type, but have ", DTypeName(t), " and ",
                     DTypeName(d));
  }
  return Status::Ok();
}

Dim MulDims(const Dim& a, const Dim& b) {
  if (a.is_static() && b.is_static()) return Dim(a.value() * b.value());
  if (a.is_static() && a.value() == 1) return b;
  if (b.is_static() && b.value() == 1) return a;
  return Dim();
}

// ---------------- elementwise ----------------

Status InferUnary(Ctx& c) {
  c.SetOutput(0, c.input_dtype(0), c.input_shape(0));
  return Status::Ok();
}

Status InferUnaryFloat(Ctx& c) {
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  return InferUnary(c);
}

Status InferUnaryBool(Ctx& c) {  // IsNaN, IsInf
  c.SetOutput(0, DType::kBool, c.input_shape(0));
  return Status::Ok();
}

Status InferBinary(Ctx& c) {  // Add, Sub, Mul, Div, Mod, Max, Min, Sum, Mean, And, Or, ...
  std::vector<size_t> all(c.num_inputs());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  AMP_RETURN_IF_ERROR(SameDType(c, all));
  AMP_ASSIGN_OR_RETURN(auto shape, Broadcast(c, all));
  c.SetOutput(0, c.input_dtype(0), shape);
  return Status::Ok();
}

Status InferPow(Ctx& c) {  // exponent may have another type
  AMP_ASSIGN_OR_RETURN(auto shape, Broadcast(c, {0, 1}));
  c.SetOutput(0, c.input_dtype(0), shape);
  return Status::Ok();
}

Status InferCompare(Ctx& c) {  // Equal, Less, Greater, ...
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1}));
  AMP_ASSIGN_OR_RETURN(auto shape, Broadcast(c, {0, 1}));
  c.SetOutput(0, DType::kBool, shape);
  return Status::Ok();
}

Status InferWhere(Ctx& c) {
  if (c.input_dtype(0) != DType::kBool) return c.Error("condition must be bool");
  AMP_RETURN_IF_ERROR(SameDType(c, {1, 2}));
  AMP_ASSIGN_OR_RETURN(auto shape, Broadcast(c, {0, 1, 2}));
  c.SetOutput(0, c.input_dtype(1), shape);
  return Status::Ok();
}

Status InferClip(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1, 2}));
  return InferUnary(c);
}

Status InferCast(Ctx& c) {
  int64_t to = c.node().GetInt("to", 0);
  if (!IsSupportedDType(static_cast<int32_t>(to))) return c.Error("unsupported target type ", to);
  c.SetOutput(0, static_cast<DType>(to), c.input_shape(0));
  return Status::Ok();
}

Status InferCastLike(Ctx& c) {
  c.SetOutput(0, c.input_dtype(1), c.input_shape(0));
  return Status::Ok();
}

Status InferDropout(Ctx& c) {
  AMP_RETURN_IF_ERROR(RequireRank(c, 1, 0, "ratio"));
  AMP_RETURN_IF_ERROR(RequireRank(c, 2, 0, "training_mode"));
  if (c.has_input(2) && c.input_dtype(2) != DType::kBool)
    return c.Error("training_mode must be bool, not ", DTypeName(c.input_dtype(2)));
  c.SetOutput(0, c.input_dtype(0), c.input_shape(0));
  if (c.num_outputs() > 1) c.SetOutput(1, DType::kBool, c.input_shape(0));
  return Status::Ok();
}

// ---------------- linear algebra ----------------

Status InferMatMul(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1}));
  const auto& a = c.input_shape(0);
  const auto& b = c.input_shape(1);
  if (!a || !b) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  if (a->empty() || b->empty()) return c.Error("MatMul inputs must have rank >= 1");
  Shape sa = *a, sb = *b;
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
  c.SetOutput(0, c.input_dtype(0), out);
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
  std::vector<std::string> terms;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    terms.push_back(lhs.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
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

// ---------------- convolution and pooling ----------------

// Spatial output dims for Conv and pooling.
StatusOr<Shape> SpatialOut(const Ctx& c, const Shape& x, const std::vector<int64_t>& kernel,
                           bool ceil_mode) {
  size_t n = kernel.size();
  if (x.size() != n + 2)
    return c.Error("input rank ", x.size(), " does not match a ", n, "-D kernel");
  auto strides = c.node().GetInts("strides", std::vector<int64_t>(n, 1));
  auto dil = c.node().GetInts("dilations", std::vector<int64_t>(n, 1));
  auto pads = c.node().GetInts("pads", std::vector<int64_t>(2 * n, 0));
  std::string auto_pad = c.node().GetString("auto_pad", "NOTSET");
  if (strides.size() != n || dil.size() != n || pads.size() != 2 * n)
    return c.Error("strides, dilations or pads do not match the kernel rank ", n);
  Shape out;
  for (size_t i = 0; i < n; ++i) {
    const Dim& in = x[i + 2];
    if (strides[i] <= 0 || dil[i] <= 0 || kernel[i] <= 0)
      return c.Error("strides, dilations and kernel sizes must be positive");
    if (!in.is_static()) {
      out.push_back(Dim());
      continue;
    }
    int64_t eff = dil[i] * (kernel[i] - 1) + 1;
    int64_t v;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      v = (in.value() + strides[i] - 1) / strides[i];
    } else {
      int64_t padded = in.value() + (auto_pad == "VALID" ? 0 : pads[i] + pads[i + n]) - eff;
      if (padded < 0) return c.Error("the kernel is larger than the padded input");
      v = (ceil_mode ? (padded + strides[i] - 1) / strides[i] : padded / strides[i]) + 1;
      // A window that would start in the end padding is dropped (ONNX, PyTorch).
      if (ceil_mode && (v - 1) * strides[i] >= in.value() + pads[i]) --v;
    }
    out.push_back(Dim(v));
  }
  return out;
}

Status InferConv(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1, 2}));
  const auto& x = c.input_shape(0);
  const auto& w = c.input_shape(1);
  if (!x || !w) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  if (w->size() != x->size())
    return c.Error("weight rank ", w->size(), " differs from input rank ", x->size());
  if (x->size() < 3) return c.Error("Conv input must have rank >= 3 (N, C, spatial...)");
  int64_t group = c.node().GetInt("group", 1);
  if (group <= 0) return c.Error("group must be positive");
  if ((*x)[1].is_static() && (*w)[1].is_static() && (*x)[1].value() != (*w)[1].value() * group)
    return c.Error("input has ", (*x)[1].value(), " channels but the weight expects ",
                   (*w)[1].value() * group);
  std::vector<int64_t> kernel = c.node().GetInts("kernel_shape");
  if (!c.node().HasAttr("kernel_shape")) {  // present but empty is an error below
    for (size_t i = 2; i < w->size(); ++i)
      kernel.push_back((*w)[i].is_static() ? (*w)[i].value() : 1);
  }
  // kernel_shape, when given, is the weight's spatial dims.
  if (kernel.size() != w->size() - 2)
    return c.Error("kernel_shape has ", kernel.size(), " entries for ", w->size() - 2,
                   " spatial dims");
  for (size_t i = 0; i < kernel.size(); ++i)
    if ((*w)[i + 2].is_static() && (*w)[i + 2].value() != kernel[i])
      return c.Error("kernel_shape[", i, "] is ", kernel[i], " but the weight's dim ", i + 2,
                     " is ", (*w)[i + 2].value());
  AMP_ASSIGN_OR_RETURN(Shape spatial, SpatialOut(c, *x, kernel, false));
  Shape out{(*x)[0], (*w)[0]};
  out.insert(out.end(), spatial.begin(), spatial.end());
  c.SetOutput(0, c.input_dtype(0), out);
  return Status::Ok();
}

Status InferConvTranspose(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1, 2}));
  const auto& x = c.input_shape(0);
  const auto& w = c.input_shape(1);
  if (!x || !w || x->size() < 3 || w->size() != x->size()) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  size_t n = x->size() - 2;
  int64_t group = c.node().GetInt("group", 1);
  auto strides = c.node().GetInts("strides", std::vector<int64_t>(n, 1));
  auto dil = c.node().GetInts("dilations", std::vector<int64_t>(n, 1));
  auto pads = c.node().GetInts("pads", std::vector<int64_t>(2 * n, 0));
  auto outpad = c.node().GetInts("output_padding", std::vector<int64_t>(n, 0));
  auto output_shape = c.node().GetInts("output_shape");
  std::vector<int64_t> kernel = c.node().GetInts("kernel_shape");
  if (!c.node().HasAttr("kernel_shape"))
    for (size_t i = 2; i < w->size(); ++i)
      kernel.push_back((*w)[i].is_static() ? (*w)[i].value() : 1);
  if (strides.size() != n || dil.size() != n || pads.size() != 2 * n || outpad.size() != n ||
      kernel.size() != n)
    return c.Error("attribute lengths do not match the kernel rank ", n);
  for (size_t i = 0; i < n; ++i)
    if ((*w)[i + 2].is_static() && (*w)[i + 2].value() != kernel[i])
      return c.Error("kernel_shape[", i, "] is ", kernel[i], " but the weight's dim ", i + 2,
                     " is ", (*w)[i + 2].value());
  Shape out{(*x)[0], (*w)[1].is_static() ? Dim((*w)[1].value() * group) : Dim()};
  for (size_t i = 0; i < n; ++i) {
    std::string auto_pad = c.node().GetString("auto_pad", "NOTSET");
    if (!output_shape.empty()) {
      out.push_back(Dim(output_shape[output_shape.size() - n + i]));
    } else if ((auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") && (*x)[i + 2].is_static()) {
      out.push_back(Dim((*x)[i + 2].value() * strides[i]));  // the spec's SAME rule
    } else if ((*x)[i + 2].is_static()) {
      int64_t v = strides[i] * ((*x)[i + 2].value() - 1) + outpad[i] + (kernel[i] - 1) * dil[i] +
                  1 - pads[i] - pads[i + n];
      out.push_back(Dim(v));
    } else {
      out.push_back(Dim());
    }
  }
  c.SetOutput(0, c.input_dtype(0), out);
  return Status::Ok();
}

Status InferPool(Ctx& c) {  // MaxPool, AveragePool, LpPool
  const auto& x = c.input_shape(0);
  auto kernel = c.node().GetInts("kernel_shape");
  if (kernel.empty()) return c.Error("kernel_shape is required");
  if (!x) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    if (c.num_outputs() > 1) c.SetOutput(1, DType::kInt64, std::nullopt);
    return Status::Ok();
  }
  AMP_ASSIGN_OR_RETURN(Shape spatial,
                       SpatialOut(c, *x, kernel, c.node().GetInt("ceil_mode", 0) != 0));
  Shape out{(*x)[0], (*x)[1]};
  out.insert(out.end(), spatial.begin(), spatial.end());
  c.SetOutput(0, c.input_dtype(0), out);
  if (c.num_outputs() > 1) c.SetOutput(1, DType::kInt64, out);  // MaxPool indices
  return Status::Ok();
}

Status InferGlobalPool(Ctx& c) {
  const auto& x = c.input_shape(0);
  if (!x) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  if (x->size() < 3) return c.Error("input must have rank >= 3");
  Shape out{(*x)[0], (*x)[1]};
  out.resize(x->size(), Dim(1));
  c.SetOutput(0, c.input_dtype(0), out);
  return Status::Ok();
}

// ---------------- normalization ----------------

Status InferBatchNorm(Ctx& c) {
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  // Opset 15 lets scale/bias and mean/var have their own types (T1, T2).
  AMP_RETURN_IF_ERROR(SameDType(c, {1, 2}));
  AMP_RETURN_IF_ERROR(SameDType(c, {3, 4}));
  // Opset 14+: the running statistics are outputs only in training mode.
  if (c.opset() >= 14 && c.node().GetInt("training_mode", 0) == 0 && c.num_outputs() > 1)
    return c.Error("has ", c.num_outputs(),
                   " outputs, but with training_mode 0 BatchNormalization has only Y");
  // scale, B, mean and var are one value per channel (dim 1 of X).
  const auto& x = c.input_shape(0);
  if (x && x->size() < 2)
    return c.Error("X must have rank >= 2, but has shape ", ShapeToString(*x));
  for (size_t i = 1; i < 5 && i < c.num_inputs(); ++i) {
    AMP_RETURN_IF_ERROR(RequireRank(c, i, 1, "a per-channel input"));
    if (x && c.has_input(i) && c.input_shape(i) && (*x)[1].is_static() &&
        (*c.input_shape(i))[0].is_static() && (*c.input_shape(i))[0].value() != (*x)[1].value())
      return c.Error("input ", i, " has ", (*c.input_shape(i))[0].value(), " values but X has ",
                     (*x)[1].value(), " channels");
  }
  c.SetOutput(0, c.input_dtype(0), c.input_shape(0));
  for (size_t i = 1; i < c.num_outputs(); ++i) c.SetOutput(i, c.input_dtype(3), c.input_shape(3));
  return Status::Ok();
}

Status InferLayerNorm(Ctx& c) {
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  c.SetOutput(0, c.input_dtype(0), c.input_shape(0));
  DType stash = static_cast<DType>(c.node().GetInt("stash_type", 1));
  if (c.num_outputs() > 1) {
    std::optional<Shape> stat;
    if (const auto& x = c.input_shape(0)) {
      AMP_ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(c, c.node().GetInt("axis", -1),
                                                       static_cast<int64_t>(x->size())));
      stat = *x;
      for (size_t k = axis; k < x->size(); ++k) (*stat)[k] = Dim(1);
    }
    for (size_t i = 1; i < c.num_outputs(); ++i) c.SetOutput(i, stash, stat);
  }
  return Status::Ok();
}

Status InferSoftmax(Ctx& c) {
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  if (const auto& x = c.input_shape(0); x && !x->empty())
    AMP_RETURN_IF_ERROR(NormalizeAxis(c, c.node().GetInt("axis", -1), x->size()).status());
  return InferUnary(c);
}

// ---------------- losses ----------------

Status InferSoftmaxCrossEntropy(Ctx& c) {  // also NegativeLogLikelihoodLoss
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  if (!IsInteger(c.input_dtype(1))) return c.Error("labels must be int32 or int64");
  std::string reduction = c.node().GetString("reduction", "mean");
  std::optional<Shape> out;
  if (reduction == "none") {
    if (c.input_shape(1)) out = *c.input_shape(1);
  } else if (reduction == "mean" || reduction == "sum") {
    out = Shape{};
  } else {
    return c.Error("unknown reduction '", reduction, "'");
  }
  c.SetOutput(0, c.input_dtype(0), out);
  if (c.num_outputs() > 1) c.SetOutput(1, c.input_dtype(0), c.input_shape(0));  // log_prob
  return Status::Ok();
}

// ---------------- reductions ----------------

Status InferReduce(Ctx& c) {
  const std::string& op = c.node().op_type();
  bool axes_as_input = op == "ReduceSum" || c.opset() >= 18;
  std::optional<std::vector<int64_t>> axes;
  bool axes_unknown = false;
  if (axes_as_input) {
    if (c.has_input(1)) {
      axes = ConstInts(c, 1);
      if (!axes) axes_unknown = true;
    }
  } else if (c.node().HasAttr("axes")) {
    axes = c.node().GetInts("axes");
  }
  bool keepdims = c.node().GetInt("keepdims", 1) != 0;
  bool noop = c.node().GetInt("noop_with_empty_axes", 0) != 0;
  DType out_type = (op == "ArgMax" || op == "ArgMin") ? DType::kInt64 : c.input_dtype(0);
  const auto& x = c.input_shape(0);
  if (!x || axes_unknown) {
    std::optional<Shape> s;
    if (x && keepdims) s = Shape(x->size(), Dim());
    c.SetOutput(0, out_type, s);
    return Status::Ok();
  }
  int64_t rank = static_cast<int64_t>(x->size());
  std::set<int64_t> reduce;
  if (op == "ArgMax" || op == "ArgMin") {
    AMP_ASSIGN_OR_RETURN(int64_t a, NormalizeAxis(c, c.node().GetInt("axis", 0), rank));
    reduce.insert(a);
  } else if (!axes || axes->empty()) {
    if (noop) {
      c.SetOutput(0, out_type, *x);
      return Status::Ok();
    }
    for (int64_t k = 0; k < rank; ++k) reduce.insert(k);
  } else {
    for (int64_t a : *axes) {
      AMP_ASSIGN_OR_RETURN(int64_t n, NormalizeAxis(c, a, rank));
      reduce.insert(n);
    }
  }
  Shape out;
  for (int64_t k = 0; k < rank; ++k) {
    if (!reduce.count(k))
      out.push_back((*x)[k]);
    else if (keepdims)
      out.push_back(Dim(1));
  }
  c.SetOutput(0, out_type, out);
  return Status::Ok();
}

Status InferCumSum(Ctx& c) { return InferUnary(c); }

Status InferTopK(Ctx& c) {
  const auto& x = c.input_shape(0);
  std::optional<Shape> out;
  if (x) {
    AMP_ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(c, c.node().GetInt("axis", -1), x->size()));
    out = *x;
    auto k = ConstInts(c, 1);
    (*out)[axis] = k && k->size() == 1 ? Dim((*k)[0]) : Dim();
  }
  c.SetOutput(0, c.input_dtype(0), out);
  c.SetOutput(1, DType::kInt64, out);
  return Status::Ok();
}

// ---------------- shape manipulation ----------------

// In shape data (the elements of a shape tensor), -1 is kept as this symbol
// so that Reshape can tell it from an unknown element.
constexpr const char* kInferDim = "-1";

// The dims a shape tensor input describes: from its constant data or from
// propagated shape values. Null when unknown.
std::optional<std::vector<Dim>> ShapeInput(const Ctx& c, size_t i) {
  if (const auto* sv = c.shape_value(i)) return *sv;
  if (auto v = ConstInts(c, i)) {
    std::vector<Dim> dims;
    for (int64_t x : *v) dims.push_back(x == -1 ? Dim::Symbol(kInferDim) : Dim(x));
    return dims;
  }
  return std::nullopt;
}

bool IsInferDim(const Dim& d) { return d.is_symbolic() && d.symbol() == kInferDim; }
// A shape read as output dims: -1 has no meaning there, so it is unknown.
Shape AsShape(const std::vector<Dim>& dims) {
  Shape s;
  for (const Dim& d : dims) s.push_back(IsInferDim(d) ? Dim() : d);
  return s;
}

// Rank of a 1-D shape tensor input when its length is static.
std::optional<int64_t> ShapeInputLength(const Ctx& c, size_t i) {
  const auto& s = c.input_shape(i);
  if (s && s->size() == 1 && (*s)[0].is_static()) return (*s)[0].value();
  return std::nullopt;
}

Status InferReshape(Ctx& c) {
  if (!IsInteger(c.input_dtype(1)) || c.input_dtype(1) != DType::kInt64)
    return c.Error("the shape input must be int64");
  auto target = ShapeInput(c, 1);
  if (!target) {
    auto len = ShapeInputLength(c, 1);
    c.SetOutput(0, c.input_dtype(0), len ? std::optional<Shape>(Shape(*len, Dim())) : std::nullopt);
    return Status::Ok();
  }
  bool allowzero = c.node().GetInt("allowzero", 0) != 0;
  const auto& x = c.input_shape(0);
  Shape out;
  int infer_at = -1;
  for (size_t k = 0; k < target->size(); ++k) {
    const Dim& d = (*target)[k];
    if (IsInferDim(d)) {
      if (infer_at >= 0) return c.Error("the shape has more than one -1");
      infer_at = static_cast<int>(k);
      out.push_back(Dim());
    } else if (d.is_static() && d.value() == 0 && !allowzero) {
      if (!x || k >= x->size())
        return c.Error("shape dim ", k, " is 0 (copy) but the input has no such dim");
      out.push_back((*x)[k]);
    } else {
      out.push_back(d);
    }
  }
  if (infer_at >= 0 && x) {
    // Static input and output products, and cancel matching symbols.
    int64_t in_static = 1, out_static = 1;
    std::multiset<std::string> in_syms, out_syms;
    bool ok = true;
    for (const Dim& d : *x) {
      if (d.is_static())
        in_static *= d.value();
      else if (d.is_symbolic())
        in_syms.insert(d.symbol());
      else
        ok = false;
    }
    for (size_t k = 0; k < out.size(); ++k) {
      if (static_cast<int>(k) == infer_at) continue;
      const Dim& d = out[k];
      if (d.is_static())
        out_static *= d.value();
      else if (d.is_symbolic())
        out_syms.insert(d.symbol());
      else
        ok = false;
    }
    if (ok && in_syms == out_syms && out_static != 0) {
      if (in_static % out_static != 0)
        return c.Error("cannot reshape ", ShapeToString(*x), " to ", ShapeToString(out));
      out[infer_at] = Dim(in_static / out_static);
    } else if (ok && out_static != 0 && out_syms.empty() && in_syms.size() == 1 &&
               in_static % out_static == 0 && in_static / out_static == 1) {
      out[infer_at] = Dim::Symbol(*in_syms.begin());
    } else {
      out[infer_at] = Dim();
    }
  }
  if (x) {
    auto in_n = StaticNumElements(*x);
    auto out_n = StaticNumElements(out);
    if (in_n && out_n && *in_n != *out_n)
      return c.Error("cannot reshape ", ShapeToString(*x), " (", *in_n, " elements) to ",
                     ShapeToString(out), " (", *out_n, " elements)");
  }
  c.SetOutput(0, c.input_dtype(0), out);
  // Reshape of a shape value keeps its elements.
  if (const auto* sv = c.shape_value(0)) c.SetOutputShapeValue(0, *sv);
  return Status::Ok();
}

Status InferFlatten(Ctx& c) {
  const auto& x = c.input_shape(0);
  if (!x) {
    c.SetOutput(0, c.input_dtype(0), Shape{Dim(), Dim()});
    return Status::Ok();
  }
  int64_t rank = static_cast<int64_t>(x->size());
  int64_t axis = c.node().GetInt("axis", 1);
  if (axis < -rank || axis > rank)
    return c.Error("axis ", axis, " is out of range for rank ", rank);
  if (axis < 0) axis += rank;
  Dim a(1), b(1);
  for (int64_t k = 0; k < rank; ++k) (k < axis ? a : b) = MulDims(k < axis ? a : b, (*x)[k]);
  c.SetOutput(0, c.input_dtype(0), Shape{a, b});
  return Status::Ok();
}

Status InferTranspose(Ctx& c) {
  const auto& x = c.input_shape(0);
  if (!x) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  std::vector<int64_t> perm = c.node().GetInts("perm");
  if (!c.node().HasAttr("perm"))  // absent: reverse; present but empty: rank 0 only
    for (int64_t k = static_cast<int64_t>(x->size()) - 1; k >= 0; --k) perm.push_back(k);
  if (perm.size() != x->size())
    return c.Error("perm has ", perm.size(), " entries for rank ", x->size());
  std::vector<bool> seen(perm.size());
  Shape out;
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(x->size()) || seen[p])
      return c.Error("perm is not a permutation");
    seen[p] = true;
    out.push_back((*x)[p]);
  }
  c.SetOutput(0, c.input_dtype(0), out);
  return Status::Ok();
}

Status InferSqueeze(Ctx& c) {
  const auto& x = c.input_shape(0);
  std::optional<std::vector<int64_t>> axes;
  if (c.has_input(1)) {
    axes = ConstInts(c, 1);
    if (!axes) {
      c.SetOutput(0, c.input_dtype(0), std::nullopt);
      return Status::Ok();
    }
  }
  if (!x) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  int64_t rank = static_cast<int64_t>(x->size());
  std::set<int64_t> drop;
  if (axes) {
    for (int64_t a : *axes) {
      AMP_ASSIGN_OR_RETURN(int64_t n, NormalizeAxis(c, a, rank));
      if ((*x)[n].is_static() && (*x)[n].value() != 1)
        return c.Error("cannot squeeze axis ", a, " of size ", (*x)[n].value());
      drop.insert(n);
    }
  } else {
    for (int64_t k = 0; k < rank; ++k) {
      if ((*x)[k].is_static() && (*x)[k].value() == 1)
        drop.insert(k);
      else if (!(*x)[k].is_static()) {
        c.SetOutput(0, c.input_dtype(0), std::nullopt);
        return Status::Ok();
      }
    }
  }
  Shape out;
  for (int64_t k = 0; k < rank; ++k)
    if (!drop.count(k)) out.push_back((*x)[k]);
  c.SetOutput(0, c.input_dtype(0), out);
  if (const auto* sv = c.shape_value(0)) c.SetOutputShapeValue(0, *sv);
  return Status::Ok();
}

Status InferUnsqueeze(Ctx& c) {
  const auto& x = c.input_shape(0);
  auto axes = ConstInts(c, 1);
  if (!x || !axes) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  int64_t rank = static_cast<int64_t>(x->size() + axes->size());
  std::set<int64_t> add;
  for (int64_t a : *axes) {
    AMP_ASSIGN_OR_RETURN(int64_t n, NormalizeAxis(c, a, rank));
    if (!add.insert(n).second) return c.Error("axis ", a, " is repeated");
  }
  Shape out;
  size_t src = 0;
  for (int64_t k = 0; k < rank; ++k) out.push_back(add.count(k) ? Dim(1) : (*x)[src++]);
  c.SetOutput(0, c.input_dtype(0), out);
  if (const auto* sv = c.shape_value(0)) c.SetOutputShapeValue(0, *sv);
  return Status::Ok();
}

Status InferConcat(Ctx& c) {
  std::vector<size_t> all(c.num_inputs());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  AMP_RETURN_IF_ERROR(SameDType(c, all));
  std::optional<Shape> out;
  int64_t axis = c.node().GetInt("axis", 0);
  bool known = true;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    const auto& s = c.input_shape(i);
    if (!s) {
      known = false;
      continue;
    }
    AMP_ASSIGN_OR_RETURN(int64_t a, NormalizeAxis(c, axis, s->size()));
    if (!out) {
      out = *s;
      continue;
    }
    if (out->size() != s->size()) return c.Error("inputs have different ranks");
    for (size_t k = 0; k < s->size(); ++k) {
      if (static_cast<int64_t>(k) == a) {
        (*out)[k] = (*out)[k].is_static() && (*s)[k].is_static()
                        ? Dim((*out)[k].value() + (*s)[k].value())
                        : Dim();
      } else if ((*out)[k].is_static() && (*s)[k].is_static() &&
                 (*out)[k].value() != (*s)[k].value()) {
        return c.Error("inputs differ in dim ", k, " (", (*out)[k].value(), " vs ", (*s)[k].value(),
                       ")");
      } else if (!(*out)[k].is_static()) {
        (*out)[k] = (*s)[k].is_static() ? (*s)[k] : (*out)[k];
      }
    }
  }
  if (!known && out) {
    AMP_ASSIGN_OR_RETURN(int64_t a, NormalizeAxis(c, axis, out->size()));
    (*out)[a] = Dim();
  }
  c.SetOutput(0, c.input_dtype(0), out);
  // Concatenation of shape values (the Shape -> Concat -> Reshape idiom).
  std::vector<Dim> sv;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    auto part = ShapeInput(c, i);
    if (!part) return Status::Ok();
    sv.insert(sv.end(), part->begin(), part->end());
  }
  c.SetOutputShapeValue(0, sv);
  return Status::Ok();
}

Status InferSplit(Ctx& c) {
  const auto& x = c.input_shape(0);
  size_t n = c.num_outputs();
  if (!x) {
    for (size_t i = 0; i < n; ++i) c.SetOutput(i, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  AMP_ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(c, c.node().GetInt("axis", 0), x->size()));
  std::optional<std::vector<int64_t>> split;
  if (c.has_input(1)) split = ConstInts(c, 1);
  const Dim& d = (*x)[axis];
  for (size_t i = 0; i < n; ++i) {
    Shape s = *x;
    if (split) {
      if (split->size() != n)
        return c.Error("split has ", split->size(), " entries for ", n, " outputs");
      s[axis] = Dim((*split)[i]);
    } else if (c.has_input(1)) {
      s[axis] = Dim();
    } else if (d.is_static()) {
      int64_t chunk = (d.value() + static_cast<int64_t>(n) - 1) / static_cast<int64_t>(n);
      int64_t size = std::min(chunk, d.value() - chunk * static_cast<int64_t>(i));
      s[axis] = Dim(std::max<int64_t>(size, 0));
    } else {
      s[axis] = Dim();
    }
    c.SetOutput(i, c.input_dtype(0), s);
  }
  if (split && d.is_static()) {
    int64_t total = 0;
    for (int64_t v : *split) total += v;
    if (total != d.value()) return c.Error("split sizes sum to ", total, ", not ", d.value());
  }
  return Status::Ok();
}

Status InferSlice(Ctx& c) {
  const auto& x = c.input_shape(0);
  auto starts = ConstInts(c, 1), ends = ConstInts(c, 2);
  std::optional<std::vector<int64_t>> axes, steps;
  if (c.has_input(3)) axes = ConstInts(c, 3);
  if (c.has_input(4)) steps = ConstInts(c, 4);
  if (!x || !starts || !ends || (c.has_input(3) && !axes) || (c.has_input(4) && !steps)) {
    c.SetOutput(0, c.input_dtype(0),
                x ? std::optional<Shape>(Shape(x->size(), Dim())) : std::nullopt);
    return Status::Ok();
  }
  int64_t rank = static_cast<int64_t>(x->size());
  if (!axes) {
    axes.emplace();
    for (size_t k = 0; k < starts->size(); ++k) axes->push_back(static_cast<int64_t>(k));
  }
  if (!steps) steps = std::vector<int64_t>(starts->size(), 1);
  if (ends->size() != starts->size() || axes->size() != starts->size() ||
      steps->size() != starts->size())
    return c.Error("starts, ends, axes and steps must have the same length");
  Shape out = *x;
  const std::vector<Dim>* sv = c.shape_value(0);
  std::vector<Dim> sv_out;
  bool sv_ok = sv && rank == 1;
  for (size_t k = 0; k < starts->size(); ++k) {
    AMP_ASSIGN_OR_RETURN(int64_t a, NormalizeAxis(c, (*axes)[k], rank));
    int64_t step = (*steps)[k];
    if (step == 0) return c.Error("slice step is 0");
    const Dim& d = (*x)[a];
    if (!d.is_static()) {
      out[a] = Dim();
      sv_ok = false;
      continue;
    }
    int64_t n = d.value();
    auto clamp = [](int64_t v, int64_t lo, int64_t hi) { return std::max(lo, std::min(v, hi)); };
    int64_t s = (*starts)[k], e = (*ends)[k];
    if (s < 0) s += n;
    if (e < 0) e += n;
    int64_t count;
    if (step > 0) {
      s = clamp(s, 0, n);
      e = clamp(e, 0, n);
      count = e > s ? (e - s + step - 1) / step : 0;
    } else {
      s = clamp(s, -1, n - 1);
      e = clamp(e, -1, n - 1);
      count = s > e ? (s - e - step - 1) / -step : 0;
    }
    out[a] = Dim(count);
    if (sv_ok)
      for (int64_t q = 0; q < count; ++q) sv_out.push_back((*sv)[s + q * step]);
  }
  c.SetOutput(0, c.input_dtype(0), out);
  if (sv_ok) c.SetOutputShapeValue(0, sv_out);
  return Status::Ok();
}

Status InferGather(Ctx& c) {
  if (!IsInteger(c.input_dtype(1))) return c.Error("indices must be int32 or int64");
  const auto& x = c.input_shape(0);
  const auto& idx = c.input_shape(1);
  if (!x || !idx) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  if (x->empty()) return c.Error("cannot gather from a scalar");
  AMP_ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(c, c.node().GetInt("axis", 0), x->size()));
  Shape out(x->begin(), x->begin() + axis);
  out.insert(out.end(), idx->begin(), idx->end());
  out.insert(out.end(), x->begin() + axis + 1, x->end());
  c.SetOutput(0, c.input_dtype(0), out);
  const auto* sv = c.shape_value(0);
  auto ids = ConstInts(c, 1);
  if (sv && ids && x->size() == 1) {
    std::vector<Dim> picked;
    int64_t n = static_cast<int64_t>(sv->size());
    for (int64_t i : *ids) {
      if (i < -n || i >= n) return c.Error("index ", i, " is out of range for ", n, " elements");
      picked.push_back((*sv)[i < 0 ? i + n : i]);
    }
    c.SetOutputShapeValue(0, picked);
  }
  return Status::Ok();
}

Status InferGatherElements(Ctx& c) {
  c.SetOutput(0, c.input_dtype(0), c.input_shape(1));
  return Status::Ok();
}

Status InferScatterElements(Ctx& c) { return InferUnary(c); }

Status InferExpand(Ctx& c) {
  auto target = ShapeInput(c, 1);
  const auto& x = c.input_shape(0);
  if (!target || !x) {
    auto len = ShapeInputLength(c, 1);
    std::optional<Shape> out;
    if (len && x) out = Shape(std::max<int64_t>(*len, x->size()), Dim());
    c.SetOutput(0, c.input_dtype(0), out);
    return Status::Ok();
  }
  Shape t = AsShape(*target);
  Shape out = *x;
  if (t.size() > out.size()) out.insert(out.begin(), t.size() - out.size(), Dim(1));
  size_t off = out.size() - t.size();
  for (size_t k = 0; k < t.size(); ++k) {
    AMP_ASSIGN_OR_RETURN(out[off + k], BroadcastDim(c, out[off + k], t[k]));
  }
  c.SetOutput(0, c.input_dtype(0), out);
  return Status::Ok();
}

Status InferTile(Ctx& c) {
  const auto& x = c.input_shape(0);
  auto reps = ConstInts(c, 1);
  if (!x || !reps) {
    c.SetOutput(0, c.input_dtype(0),
                x ? std::optional<Shape>(Shape(x->size(), Dim())) : std::nullopt);
    return Status::Ok();
  }
  if (reps->size() != x->size())
    return c.Error("repeats has ", reps->size(), " entries for rank ", x->size());
  Shape out;
  for (size_t k = 0; k < x->size(); ++k) out.push_back(MulDims((*x)[k], Dim((*reps)[k])));
  c.SetOutput(0, c.input_dtype(0), out);
  return Status::Ok();
}

Status InferPad(Ctx& c) {
  const auto& x = c.input_shape(0);
  auto pads = ConstInts(c, 1);
  if (!x || !pads) {
    c.SetOutput(0, c.input_dtype(0),
                x ? std::optional<Shape>(Shape(x->size(), Dim())) : std::nullopt);
    return Status::Ok();
  }
  std::vector<int64_t> axes;
  if (c.has_input(3)) {
    auto a = ConstInts(c, 3);
    if (!a) {
      c.SetOutput(0, c.input_dtype(0), Shape(x->size(), Dim()));
      return Status::Ok();
    }
    for (int64_t v : *a) {
      AMP_ASSIGN_OR_RETURN(int64_t n, NormalizeAxis(c, v, x->size()));
      axes.push_back(n);
    }
  } else {
    for (size_t k = 0; k < x->size(); ++k) axes.push_back(static_cast<int64_t>(k));
  }
  if (pads->size() != 2 * axes.size())
    return c.Error("pads has ", pads->size(), " entries for ", axes.size(), " axes");
  Shape out = *x;
  for (size_t k = 0; k < axes.size(); ++k) {
    Dim& d = out[axes[k]];
    if (d.is_static())
      d = Dim(d.value() + (*pads)[k] + (*pads)[k + axes.size()]);
    else if ((*pads)[k] != 0 || (*pads)[k + axes.size()] != 0)
      d = Dim();
  }
  c.SetOutput(0, c.input_dtype(0), out);
  return Status::Ok();
}

Status InferShape(Ctx& c) {
  const auto& x = c.input_shape(0);
  if (!x) {
    c.SetOutput(0, DType::kInt64, Shape{Dim()});
    return Status::Ok();
  }
  int64_t rank = static_cast<int64_t>(x->size());
  int64_t start = c.node().GetInt("start", 0), end = c.node().GetInt("end", rank);
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, 0, rank);
  std::vector<Dim> dims(x->begin() + start, x->begin() + std::max(start, end));
  c.SetOutput(0, DType::kInt64, Shape{Dim(static_cast<int64_t>(dims.size()))});
  c.SetOutputShapeValue(0, dims);
  return Status::Ok();
}

Status InferSize(Ctx& c) {
  c.SetOutput(0, DType::kInt64, Shape{});
  if (const auto& x = c.input_shape(0)) {
    Dim n(1);
    for (const Dim& d : *x) n = MulDims(n, d);
    c.SetOutputShapeValue(0, {n});
  }
  return Status::Ok();
}

Status InferConstant(Ctx& c) {
  AMP_ASSIGN_OR_RETURN(Tensor t, ConstantNodeValue(c.node()));
  c.SetOutput(0, t.dtype(), ShapeFromDims(t.dims()));
  c.SetOutputConstant(0, std::move(t));
  return Status::Ok();
}

Status InferConstantOfShape(Ctx& c) {
  DType dtype = DType::kFloat32;
  if (const Attribute* a = c.node().FindAttr("value")) {
    if (a->kind != Attribute::Kind::kTensor || a->t.num_elements() != 1)
      return c.Error("value must be a one-element tensor");
    dtype = a->t.dtype();
  }
  auto target = ShapeInput(c, 0);
  if (target) {
    for (const Dim& d : *target)
      if (d.is_static() && d.value() > kMaxDim) return c.Error("dim ", d.value(), " is too large");
    c.SetOutput(0, dtype, AsShape(*target));
  } else {
    auto len = ShapeInputLength(c, 0);
    c.SetOutput(0, dtype, len ? std::optional<Shape>(Shape(*len, Dim())) : std::nullopt);
  }
  return Status::Ok();
}

Status InferRange(Ctx& c) {
  AMP_RETURN_IF_ERROR(SameDType(c, {0, 1, 2}));
  Dim n;
  const Tensor *s = c.constant(0), *l = c.constant(1), *d = c.constant(2);
  if (s && l && d && s->num_elements() == 1 && l->num_elements() == 1 && d->num_elements() == 1) {
    double delta = d->GetDouble(0);
    if (delta == 0) return c.Error("delta is 0");
    double count = std::ceil((l->GetDouble(0) - s->GetDouble(0)) / delta);
    if (count > static_cast<double>(kMaxDim)) return c.Error("the range has too many elements");
    n = Dim(std::max<int64_t>(0, static_cast<int64_t>(count)));
  }
  c.SetOutput(0, c.input_dtype(0), Shape{n});
  return Status::Ok();
}

Status InferOneHot(Ctx& c) {
  const auto& idx = c.input_shape(0);
  std::optional<Shape> out;
  if (idx) {
    int64_t rank = static_cast<int64_t>(idx->size()) + 1;
    AMP_ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(c, c.node().GetInt("axis", -1), rank));
    out = *idx;
    const Tensor* depth = c.constant(1);
    out->insert(out->begin() + axis,
                depth && depth->num_elements() == 1 ? Dim(depth->GetInt(0)) : Dim());
  }
  c.SetOutput(0, c.input_dtype(2), out);
  return Status::Ok();
}

Status InferResize(Ctx& c) {
  const auto& x = c.input_shape(0);
  std::optional<Shape> out;
  if (x) {
    out = Shape(x->size(), Dim());
    if (c.has_input(3)) {
      if (auto sizes = ConstInts(c, 3); sizes && sizes->size() == x->size())
        out = ShapeFromDims(*sizes);
    } else if (c.has_input(2) && c.constant(2) &&
               c.constant(2)->num_elements() == static_cast<int64_t>(x->size())) {
      const Tensor* sc = c.constant(2);
      for (size_t k = 0; k < x->size(); ++k)
        if ((*x)[k].is_static())
          (*out)[k] = Dim(static_cast<int64_t>(std::floor((*x)[k].value() * sc->GetDouble(k))));
    }
  }
  c.SetOutput(0, c.input_dtype(0), out);
  return Status::Ok();
}

Status InferTrilu(Ctx& c) { return InferUnary(c); }

Status InferNonZero(Ctx& c) {
  const auto& x = c.input_shape(0);
  c.SetOutput(0, DType::kInt64,
              x ? std::optional<Shape>(Shape{Dim(static_cast<int64_t>(x->size())), Dim()})
                : std::optional<Shape>(Shape{Dim(), Dim()}));
  return Status::Ok();
}

// RNN, GRU, LSTM: Y [seq, dirs, batch, hidden], Y_h and Y_c [dirs, batch, hidden]
// (layout 0).
Status InferRecurrent(Ctx& c) {
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  int64_t hidden = c.node().GetInt("hidden_size", -1);
  if (hidden <= 0) return c.Error("hidden_size is required");
  std::string direction = c.node().GetString("direction", "forward");
  Dim dirs(direction == "bidirectional" ? 2 : 1);
  // layout 1: X [batch, seq, input], Y [batch, seq, dirs, hidden], Y_h [batch, dirs, hidden].
  bool batch_first = c.node().GetInt("layout", 0) != 0;
  const auto& x = c.input_shape(0);
  Dim seq, batch;
  if (x && x->size() == 3) {
    seq = (*x)[batch_first ? 1 : 0];
    batch = (*x)[batch_first ? 0 : 1];
  }
  if (c.num_outputs() > 0)
    c.SetOutput(
        0, c.input_dtype(0),
        batch_first ? Shape{batch, seq, dirs, Dim(hidden)} : Shape{seq, dirs, batch, Dim(hidden)});
  for (size_t i = 1; i < c.num_outputs(); ++i)
    c.SetOutput(i, c.input_dtype(0),
                batch_first ? Shape{batch, dirs, Dim(hidden)} : Shape{dirs, batch, Dim(hidden)});
  return Status::Ok();
}

// ---------------- the table ----------------

constexpr int kVariadic = -1;

constexpr std::array kOps = std::to_array<OpSchema>({
    // elementwise, one input
    {"Abs", 1, 1, 1, 1, InferUnary},
    {"Ceil", 1, 1, 1, 1, InferUnaryFloat},
    {"Cos", 1, 1, 1, 1, InferUnaryFloat},
    {"Elu", 1, 1, 1, 1, InferUnaryFloat},
    {"Erf", 1, 1, 1, 1, InferUnaryFloat},
    {"Exp", 1, 1, 1, 1, InferUnaryFloat},
    {"Floor", 1, 1, 1, 1, InferUnaryFloat},
    {"Gelu", 1, 1, 1, 1, InferUnaryFloat},
    {"HardSigmoid", 1, 1, 1, 1, InferUnaryFloat},
    {"HardSwish", 1, 1, 1, 1, InferUnaryFloat},
    {"Identity", 1, 1, 1, 1, InferUnary},
    {"IsInf", 1, 1, 1, 1, InferUnaryBool},
    {"IsNaN", 1, 1, 1, 1, InferUnaryBool},
    {"LeakyRelu", 1, 1, 1, 1, InferUnaryFloat},
    {"Log", 1, 1, 1, 1, InferUnaryFloat},
    {"Mish", 1, 1, 1, 1, InferUnaryFloat},
    {"Neg", 1, 1, 1, 1, InferUnary},
    {"Not", 1, 1, 1, 1, InferUnary},
    {"Reciprocal", 1, 1, 1, 1, InferUnaryFloat},
    {"Relu", 1, 1, 1, 1, InferUnary},
    {"Round", 1, 1, 1, 1, InferUnaryFloat},
    {"Selu", 1, 1, 1, 1, InferUnaryFloat},
    {"Sigmoid", 1, 1, 1, 1, InferUnaryFloat},
    {"Sign", 1, 1, 1, 1, InferUnary},
    {"Sin", 1, 1, 1, 1, InferUnaryFloat},
    {"Softplus", 1, 1, 1, 1, InferUnaryFloat},
    {"Softsign", 1, 1, 1, 1, InferUnaryFloat},
    {"Sqrt", 1, 1, 1, 1, InferUnaryFloat},
    {"Tanh", 1, 1, 1, 1, InferUnaryFloat},
    {"Softmax", 1, 1, 1, 1, InferSoftmax},
    {"LogSoftmax", 1, 1, 1, 1, InferSoftmax},
    {"Hardmax", 1, 1, 1, 1, InferSoftmax},
    {"Cast", 1, 1, 1, 1, InferCast},
    {"CastLike", 2, 2, 1, 1, InferCastLike},
    {"Clip", 1, 3, 1, 1, InferClip},
    {"Dropout", 1, 3, 1, 2, InferDropout},
    {"CumSum", 2, 2, 1, 1, InferCumSum},
    {"Trilu", 1, 2, 1, 1, InferTrilu},
    // elementwise, broadcasting
    {"Add", 2, 2, 1, 1, InferBinary},
    {"Sub", 2, 2, 1, 1, InferBinary},
    {"Mul", 2, 2, 1, 1, InferBinary},
    {"Div", 2, 2, 1, 1, InferBinary},
    {"Mod", 2, 2, 1, 1, InferBinary},
    {"Pow", 2, 2, 1, 1, InferPow},
    {"PRelu", 2, 2, 1, 1, InferBinary},
    {"And", 2, 2, 1, 1, InferBinary},
    {"Or", 2, 2, 1, 1, InferBinary},
    {"Xor", 2, 2, 1, 1, InferBinary},
    {"Max", 1, kVariadic, 1, 1, InferBinary},
    {"Min", 1, kVariadic, 1, 1, InferBinary},
    {"Sum", 1, kVariadic, 1, 1, InferBinary},
    {"Mean", 1, kVariadic, 1, 1, InferBinary},
    {"Equal", 2, 2, 1, 1, InferCompare},
    {"Greater", 2, 2, 1, 1, InferCompare},
    {"GreaterOrEqual", 2, 2, 1, 1, InferCompare},
    {"Less", 2, 2, 1, 1, InferCompare},
    {"LessOrEqual", 2, 2, 1, 1, InferCompare},
    {"Where", 3, 3, 1, 1, InferWhere},
    // linear algebra
    {"MatMul", 2, 2, 1, 1, InferMatMul},
    {"Gemm", 2, 3, 1, 1, InferGemm},
    {"Einsum", 1, kVariadic, 1, 1, InferEinsum},
    {"RNN", 3, 6, 0, 2, InferRecurrent},
    {"GRU", 3, 6, 0, 2, InferRecurrent},
    {"LSTM", 3, 8, 0, 3, InferRecurrent},
    // convolution and pooling
    {"Conv", 2, 3, 1, 1, InferConv},
    {"ConvTranspose", 2, 3, 1, 1, InferConvTranspose},
    {"MaxPool", 1, 1, 1, 2, InferPool},
    {"AveragePool", 1, 1, 1, 1, InferPool},
    {"LpPool", 1, 1, 1, 1, InferPool},
    {"GlobalAveragePool", 1, 1, 1, 1, InferGlobalPool},
    {"GlobalMaxPool", 1, 1, 1, 1, InferGlobalPool},
    // normalization
    {"BatchNormalization", 5, 5, 1, 3, InferBatchNorm},
    {"LayerNormalization", 2, 3, 1, 3, InferLayerNorm},
    {"GroupNormalization", 3, 3, 1, 1, InferUnaryFloat},
    {"InstanceNormalization", 3, 3, 1, 1, InferUnaryFloat},
    // losses
    {"SoftmaxCrossEntropyLoss", 2, 3, 1, 2, InferSoftmaxCrossEntropy},
    {"NegativeLogLikelihoodLoss", 2, 3, 1, 1, InferSoftmaxCrossEntropy},
    // reductions
    {"ReduceSum", 1, 2, 1, 1, InferReduce},
    {"ReduceMean", 1, 2, 1, 1, InferReduce},
    {"ReduceMax", 1, 2, 1, 1, InferReduce},
    {"ReduceMin", 1, 2, 1, 1, InferReduce},
    {"ReduceProd", 1, 2, 1, 1, InferReduce},
    {"ReduceL1", 1, 2, 1, 1, InferReduce},
    {"ReduceL2", 1, 2, 1, 1, InferReduce},
    {"ReduceLogSum", 1, 2, 1, 1, InferReduce},
    {"ReduceLogSumExp", 1, 2, 1, 1, InferReduce},
    {"ReduceSumSquare", 1, 2, 1, 1, InferReduce},
    {"ArgMax", 1, 1, 1, 1, InferReduce},
    {"ArgMin", 1, 1, 1, 1, InferReduce},
    {"TopK", 2, 2, 2, 2, InferTopK},
    // shape manipulation
    {"Reshape", 2, 2, 1, 1, InferReshape},
    {"Flatten", 1, 1, 1, 1, InferFlatten},
    {"Transpose", 1, 1, 1, 1, InferTranspose},
    {"Squeeze", 1, 2, 1, 1, InferSqueeze},
    {"Unsqueeze", 2, 2, 1, 1, InferUnsqueeze},
    {"Concat", 1, kVariadic, 1, 1, InferConcat},
    {"Split", 1, 2, 1, kVariadic, InferSplit},
    {"Slice", 3, 5, 1, 1, InferSlice},
    {"Gather", 2, 2, 1, 1, InferGather},
    {"GatherElements", 2, 2, 1, 1, InferGatherElements},
    {"ScatterElements", 3, 3, 1, 1, InferScatterElements},
    {"ScatterND", 3, 3, 1, 1, InferScatterElements},
    {"Expand", 2, 2, 1, 1, InferExpand},
    {"Tile", 2, 2, 1, 1, InferTile},
    {"Pad", 2, 4, 1, 1, InferPad},
    {"Resize", 1, 4, 1, 1, InferResize},
    {"Shape", 1, 1, 1, 1, InferShape},
    {"Size", 1, 1, 1, 1, InferSize},
    {"Constant", 0, 0, 1, 1, InferConstant},
    {"ConstantOfShape", 1, 1, 1, 1, InferConstantOfShape},
    {"Range", 3, 3, 1, 1, InferRange},
    {"OneHot", 3, 3, 1, 1, InferOneHot},
    {"NonZero", 1, 1, 1, 1, InferNonZero},
});

// ai.onnx.preview.training optimizers: R, T, then groups of n tensors (X, G,
// and V for Momentum, H for Adagrad, V and H for Adam); outputs are the new
// X, then the new state, each typed like its input.
Status InferPreviewOptimizer(InferenceContext& ctx) {
  int groups_in = ctx.node().op_type() == "Adam" ? 4 : 3;
  int groups_out = groups_in - 1;
  int64_t rest = static_cast<int64_t>(ctx.num_inputs()) - 2;
  if (rest <= 0 || rest % groups_in != 0)
    return ctx.Error("expects R, T and ", groups_in, " groups of tensors");
  int64_t n = rest / groups_in;
  if (static_cast<int64_t>(ctx.num_outputs()) != groups_out * n)
    return ctx.Error("expects ", groups_out * n, " outputs for ", n, " tensors");
  for (int64_t j = 0; j < groups_out * n; ++j) {
    size_t from = static_cast<size_t>(j < n ? 2 + j : 2 + n + j);
    if (!ctx.has_input(from)) return ctx.Error("input ", from, " is missing");
    ctx.SetOutput(j, ctx.input_dtype(from), ctx.input_shape(from));
  }
  return Status::Ok();
}

// Gradient: output i is the gradient of `y` with respect to the value named
// xs[i], so it has that value's type. (The expand-gradient pass replaces the
// node by the backward graph before anything runs.)
Status InferGradient(InferenceContext& ctx) {
  std::vector<std::string> xs;
  if (const Attribute* a = ctx.node().FindAttr("xs")) xs = a->strings;
  if (xs.size() != ctx.num_outputs())
    return ctx.Error("has ", ctx.num_outputs(), " outputs for ", xs.size(), " names in xs");
  if (!ctx.node().FindAttr("y"))
    return ctx.Error("attribute y (the value to differentiate) is required");
  for (size_t i = 0; i < xs.size(); ++i) {
    const Value* x = ctx.node().graph()->FindValue(xs[i]);
    if (!x) return ctx.Error("xs names '", xs[i], "', which the graph does not define");
    ctx.SetOutput(i, x->dtype(), x->type().shape);
  }
  return Status::Ok();
}

const std::vector<OpSchema> kPreviewTrainingOps = {
    {"Gradient", 1, -1, 1, -1, InferGradient},
    {"Adam", 6, -1, 3, -1, InferPreviewOptimizer},
    {"Momentum", 5, -1, 2, -1, InferPreviewOptimizer},
    {"Adagrad", 5, -1, 2, -1, InferPreviewOptimizer},
};

}  // namespace

namespace {

// ai.amp FusedAdam (fuse-optimizer): lr, step, skip (optional), then n
// parameters, n gradients, n first and n second moments; outputs the new
// parameters and moments, each typed like its input.
Status InferFusedAdam(InferenceContext& ctx) {
  int64_t rest = static_cast<int64_t>(ctx.num_inputs()) - 3;
  if (rest <= 0 || rest % 4 != 0)
    return ctx.Error("expects lr, step, skip and 4 groups of tensors");
  int64_t n = rest / 4;
  if (static_cast<int64_t>(ctx.num_outputs()) != 3 * n)
    return ctx.Error("expects ", 3 * n, " outputs for ", n, " parameters");
  for (int64_t j = 0; j < 3 * n; ++j) {
    size_t from = static_cast<size_t>(j < n ? 3 + j : 3 + n + j);
    ctx.SetOutput(j, ctx.input_dtype(from), ctx.input_shape(from));
  }
  return Status::Ok();
}

// ai.amp UnscaleCheck (fuse-unscale): 1/S, then n gradients; outputs the n
// unscaled gradients and a bool scalar (any of them not finite).
Status InferUnscaleCheck(InferenceContext& ctx) {
  if (ctx.num_outputs() != ctx.num_inputs())
    return ctx.Error("expects one output per gradient and the flag");
  for (size_t j = 1; j < ctx.num_inputs(); ++j)
    ctx.SetOutput(j - 1, ctx.input_dtype(j), ctx.input_shape(j));
  ctx.SetOutput(ctx.num_outputs() - 1, DType::kBool, Shape{});
  return Status::Ok();
}

const std::vector<OpSchema> kAmpOps = {
    {"FusedAdam", 7, -1, 3, -1, InferFusedAdam},
    {"UnscaleCheck", 2, -1, 2, -1, InferUnscaleCheck},
};

}  // namespace

const OpSchema* FindOpSchema(const std::string& domain, const std::string& op_type) {
  if (domain == "ai.amp") {
    for (const auto& s : kAmpOps)
      if (s.op_type == op_type) return &s;
    return nullptr;
  }
  if (domain == "ai.onnx.preview.training") {
    for (const auto& s : kPreviewTrainingOps)
      if (s.op_type == op_type) return &s;
    return nullptr;
  }
  if (!domain.empty() && domain != "ai.onnx") return nullptr;
  for (const auto& s : kOps)
    if (s.op_type == op_type) return &s;
  return nullptr;
}

std::vector<std::string_view> SupportedOps() {
  std::vector<std::string_view> out;
  for (const auto& s : kOps) out.push_back(s.op_type);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace amp
