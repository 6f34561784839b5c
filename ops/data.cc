// Data movement and shape ops: reshapes, transposes, slicing, gathers and scatters, padding, and
// the ops that make shapes and constants.
//
// Each op's facts in one record (ops/op_def.h): arity, type and shape
// inference, precision class, shape-like inputs, gradient rule or why there
// is none. Kernels are the backends' (kernels/cpu, kernels/cuda).
#include <algorithm>
#include <cmath>
#include <limits>
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
  // Concatenation of shape values (the Shape -> Concat -> Reshape idiom):
  // 1-D only. Along an axis of a higher rank the values interleave, which the
  // constant evaluator computes.
  if (!out || out->size() != 1) return Status::Ok();
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

// GatherND (batch_dims b): indices [i_0..i_{q-2}, k] pick slices of data;
// the output is the indices' leading dims (the batch dims once) then data's
// dims after b + k.
Status InferGatherND(Ctx& c) {
  if (c.input_dtype(1) != DType::kInt64) return c.Error("indices must be int64");
  const auto& x = c.input_shape(0);
  const auto& idx = c.input_shape(1);
  int64_t bd = c.node().GetInt("batch_dims", 0);
  if (bd < 0) return c.Error("batch_dims must be 0 or more, not ", bd);
  if (!x || !idx || idx->empty() || !idx->back().is_static()) {
    c.SetOutput(0, c.input_dtype(0), std::nullopt);
    return Status::Ok();
  }
  int64_t k = idx->back().value();
  int64_t r = static_cast<int64_t>(x->size()), q = static_cast<int64_t>(idx->size());
  if (bd >= std::min(r, q)) return c.Error("batch_dims ", bd, " must be less than both ranks");
  if (k < 1 || bd + k > r)
    return c.Error("the indices' last dim ", k, " must be 1 to ", r - bd, " (data rank ", r,
                   ", batch_dims ", bd, ")");
  Shape out(idx->begin(), idx->end() - 1);
  out.insert(out.end(), x->begin() + bd + k, x->end());
  c.SetOutput(0, c.input_dtype(0), out);
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

// A scatter's output may be written over its data input: the kernels copy
// data into the output (nothing, when they share bytes), then read only the
// indices, the updates and the output itself.
std::vector<std::pair<int, int>> InplaceScatter(const Node&) { return {{0, 0}}; }

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

Status InferTrilu(Ctx& c) { return InferUnary(c); }

Status InferNonZero(Ctx& c) {
  const auto& x = c.input_shape(0);
  c.SetOutput(0, DType::kInt64,
              x ? std::optional<Shape>(Shape{Dim(static_cast<int64_t>(x->size())), Dim()})
                : std::optional<Shape>(Shape{Dim(), Dim()}));
  return Status::Ok();
}

// ---- gradients ----

Status GradReshape(G& b) {  // Reshape, Flatten, Squeeze, Unsqueeze
  b.dx.assign(b.node().num_inputs(), nullptr);
  b.dx[0] = b.Op("Reshape", {b.dy(0), b.ShapeOf(b.x(0))});
  return Status::Ok();
}

Status GradTranspose(G& b) {
  std::vector<int64_t> perm = b.node().GetInts("perm");
  if (perm.empty())
    for (int64_t k = static_cast<int64_t>(ShapeOrDie(b.x(0)).size()) - 1; k >= 0; --k)
      perm.push_back(k);
  std::vector<int64_t> inverse(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) inverse[perm[k]] = static_cast<int64_t>(k);
  b.dx = {b.Transpose(b.dy(0), inverse)};
  return Status::Ok();
}

// GatherND's dX: dY added back at the gathered slices, one ScatterND (add)
// into zeros; batch_dims > 0 has no rule yet.
Status GradGatherND(G& b) {
  const Node& n = b.node();
  if (n.GetInt("batch_dims", 0) != 0)
    return Unimplemented(n.Describe(), ": GatherND's gradient supports batch_dims 0");
  if (b.opset() < 16)
    return Unimplemented(n.Describe(), ": GatherND's gradient needs opset 16 (ScatterND add)");
  Node* zeros = b.Make("ConstantOfShape", {b.ShapeOf(b.x(0))});
  zeros->SetAttr("value", Attribute::FromTensor(Tensor(b.x(0)->dtype(), {1})));
  Node* sc = b.Make("ScatterND", {zeros->output(0), b.x(1), b.dy(0)});
  sc->SetAttr("reduction", Attribute::String("add"));
  b.dx = {sc->output(0), nullptr};
  return Status::Ok();
}

// dX: the output gradient added back at the gathered positions
// (ScatterND with reduction add, which sums repeated indices). ScatterND
// scatters along the leading axis, so for Gather on axis a the data is seen
// with axis a first: X is transposed to [X_a, X_0..X_a-1, X_a+1..] and dY,
// shaped X_0..X_a-1 + q + X_a+1.. for indices of shape q, to
// q + X_0..X_a-1 + X_a+1..; the result is transposed back.
Status GradGather(G& b) {
  const Node& n = b.node();
  if (b.opset() < 16)
    return Unimplemented(n.Describe(), ": Gather's gradient needs opset 16 (ScatterND add)");
  const Shape& xs = ShapeOrDie(b.x(0));
  const Shape& qs = ShapeOrDie(b.x(1));
  const int64_t r = static_cast<int64_t>(xs.size()), q = static_cast<int64_t>(qs.size());
  int64_t a = n.GetInt("axis", 0);
  if (a < 0) a += r;
  if (a < 0 || a >= r) return InvalidArgument(n.Describe(), ": axis out of range");
  Value* shape = b.ShapeOf(b.x(0));
  Value* dy = b.dy(0);
  std::vector<int64_t> perm_x;  // X with axis a first
  if (a != 0) {
    perm_x.push_back(a);
    for (int64_t i = 0; i < r; ++i)
      if (i != a) perm_x.push_back(i);
    std::vector<int64_t> perm_y;  // dY with the index dims first
    for (int64_t i = 0; i < q; ++i) perm_y.push_back(a + i);
    for (int64_t i = 0; i < a; ++i) perm_y.push_back(i);
    for (int64_t i = a + q; i < r - 1 + q; ++i) perm_y.push_back(i);
    // Only X's shape is needed, permuted: never a transposed copy of X.
    shape = b.Op("Gather", {shape, b.Ints(perm_x)});
    dy = b.Transpose(dy, perm_y);
  }
  Node* zeros = b.Make("ConstantOfShape", {shape});
  zeros->SetAttr("value", Attribute::FromTensor(Tensor(b.x(0)->dtype(), {1})));
  Value* idx = b.Op("Unsqueeze", {b.x(1), b.Ints({-1})});
  Node* s = b.Make("ScatterND", {zeros->output(0), idx, dy});
  s->SetAttr("reduction", Attribute::String("add"));
  Value* dx = s->output(0);
  if (a != 0) {
    std::vector<int64_t> inverse(r);
    for (int64_t i = 0; i < r; ++i) inverse[perm_x[i]] = i;
    dx = b.Transpose(dx, inverse);
  }
  b.dx = {dx, nullptr};
  return Status::Ok();
}

// GatherElements's dX: dY added back at the gathered positions along the
// axis (ScatterElements add into zeros, which sums repeated indices).
Status GradGatherElements(G& b) {
  const Node& n = b.node();
  if (b.opset() < 16)
    return Unimplemented(n.Describe(),
                         ": GatherElements's gradient needs opset 16 "
                         "(ScatterElements add)");
  Node* zeros = b.Make("ConstantOfShape", {b.ShapeOf(b.x(0))});
  zeros->SetAttr("value", Attribute::FromTensor(Tensor(b.x(0)->dtype(), {1})));
  Node* sc = b.Make("ScatterElements", {zeros->output(0), b.x(1), b.dy(0)});
  sc->SetAttr("axis", Attribute::Int(n.GetInt("axis", 0)));
  sc->SetAttr("reduction", Attribute::String("add"));
  b.dx = {sc->output(0), nullptr};
  return Status::Ok();
}

// ScatterElements / ScatterND without a reduction: data's gradient is dY
// with the overwritten positions zeroed (the same scatter of zeros), the
// updates' gradient dY read at those positions (the matching gather). With
// repeated indices only one update survives the forward; the gradient then
// goes to each of them (PyTorch's scatter_ leaves that unspecified too).
Status GradScatter(G& b) {
  const Node& n = b.node();
  const bool nd = n.op_type() == "ScatterND";
  if (n.GetString("reduction", "none") != "none")
    return Unimplemented(n.Describe(), ": the gradient of ", n.op_type(),
                         " covers reduction 'none' only");
  b.dx.assign(3, nullptr);
  if (b.wants(0)) {
    Node* zeros = b.Make("ConstantOfShape", {b.ShapeOf(b.x(2))});
    zeros->SetAttr("value", Attribute::FromTensor(Tensor(b.x(0)->dtype(), {1})));
    Node* sc = b.Make(n.op_type(), {b.dy(0), b.x(1), zeros->output(0)});
    if (!nd) sc->SetAttr("axis", Attribute::Int(n.GetInt("axis", 0)));
    b.dx[0] = sc->output(0);
  }
  if (b.wants(2)) {
    Node* g = b.Make(nd ? "GatherND" : "GatherElements", {b.dy(0), b.x(1)});
    if (!nd) g->SetAttr("axis", Attribute::Int(n.GetInt("axis", 0)));
    b.dx[2] = g->output(0);
  }
  return Status::Ok();
}

Status GradConcat(G& b) {
  const Node& n = b.node();
  int64_t rank = static_cast<int64_t>(ShapeOrDie(b.y(0)).size());
  int64_t axis = n.GetInt("axis", 0);
  if (axis < -rank || axis >= rank)
    return InvalidArgument(n.Describe(), ": axis ", axis, " is out of range for rank ", rank);
  if (axis < 0) axis += rank;
  b.dx.assign(n.num_inputs(), nullptr);
  int64_t offset = 0;
  for (size_t i = 0; i < n.num_inputs(); ++i) {
    const Shape& s = ShapeOrDie(b.x(i));
    if (static_cast<int64_t>(s.size()) != rank)
      return InvalidArgument(n.Describe(), ": input ", i, " has rank ", s.size(), ", not ", rank);
    if (!s[axis].is_static())
      return InvalidArgument(n.Describe(), ": the gradient needs static sizes on the concat axis");
    int64_t len = s[axis].value();
    if (b.wants(i))
      b.dx[i] = b.Op("Slice", {b.dy(0), b.Ints({offset}), b.Ints({offset + len}), b.Ints({axis})});
    offset += len;
  }
  return Status::Ok();
}

Status GradExpand(G& b) {
  b.dx.assign(2, nullptr);
  AMP_ASSIGN_OR_RETURN(b.dx[0], b.ReduceTo(b.dy(0), ShapeOrDie(b.y(0)), b.x(0)));
  return Status::Ok();
}

Status GradSplit(G& b) {
  const Node& n = b.node();
  std::vector<Value*> parts;
  for (size_t i = 0; i < n.num_outputs(); ++i) {
    Value* g = b.dy(i);
    if (!g) {
      Node* z = b.Make("ConstantOfShape", {b.ShapeOf(b.y(i))});
      z->SetAttr("value", Attribute::FromTensor(Tensor(b.y(i)->dtype(), {1})));
      g = z->output(0);
    }
    parts.push_back(g);
  }
  Node* c = b.Make("Concat", parts);
  c->SetAttr("axis", Attribute::Int(n.GetInt("axis", 0)));
  b.dx.assign(n.num_inputs(), nullptr);
  b.dx[0] = c->output(0);
  return Status::Ok();
}

// Constant-mode Pad: dX is the part of dY that X filled, a Slice. Reflect,
// edge and wrap modes (which fold border gradients back) and negative pads
// (crops) have no rule yet.
Status GradPad(G& b) {
  const Node& n = b.node();
  std::string mode = n.GetString("mode", "constant");
  if (mode != "constant")
    return Unimplemented(n.Describe(), ": Pad's gradient supports mode 'constant' (not '", mode,
                         "')");
  auto dims = StaticDims(ShapeOrDie(b.x(0)));
  std::optional<Tensor> pads = n.num_inputs() > 1 ? ConstInput(b.x(1)) : std::nullopt;
  std::optional<Tensor> axes = n.num_inputs() > 3 ? ConstInput(b.x(3)) : std::nullopt;
  if (!dims || !pads || (n.num_inputs() > 3 && n.input(3) && !axes))
    return Unimplemented(n.Describe(),
                         ": Pad's gradient needs a static input shape and constant pads and axes");
  int64_t rank = static_cast<int64_t>(dims->size());
  std::vector<int64_t> which;
  if (axes) {
    for (int64_t k = 0; k < axes->num_elements(); ++k)
      which.push_back(axes->GetInt(k) < 0 ? axes->GetInt(k) + rank : axes->GetInt(k));
  } else {
    for (int64_t a = 0; a < rank; ++a) which.push_back(a);
  }
  int64_t count = static_cast<int64_t>(which.size());
  if (pads->num_elements() != 2 * count)
    return InvalidArgument(n.Describe(), ": pads has ", pads->num_elements(), " values for ", count,
                           " axes");
  std::vector<int64_t> starts, ends, sliced;
  for (int64_t k = 0; k < count; ++k) {
    int64_t before = pads->GetInt(k), after = pads->GetInt(k + count);
    if (before < 0 || after < 0)
      return Unimplemented(n.Describe(), ": Pad's gradient does not support negative pads");
    starts.push_back(before);
    ends.push_back(before + (*dims)[which[k]]);
    sliced.push_back(which[k]);
  }
  b.dx.assign(n.num_inputs(), nullptr);
  b.dx[0] = b.Op("Slice", {b.dy(0), b.Ints(starts), b.Ints(ends), b.Ints(sliced)});
  return Status::Ok();
}

// dX = dY put back where Slice took it from, zeros elsewhere: one Pad for
// every axis, after spreading the axes with a step k > 1 out to k-strided
// positions (Unsqueeze, Pad k-1 zeros after each element, Reshape, trim).
// Tile: the sum of dy's tiles. dy [r0*d0, r1*d1, ...] reshaped to
// [r0, d0, r1, d1, ...] and summed over the repeat axes.
Status GradTile(G& b) {
  const Node& n = b.node();
  auto dims = StaticDims(ShapeOrDie(b.x(0)));
  std::optional<Tensor> repeats = ConstInput(b.x(1));
  if (!dims || !repeats || repeats->num_elements() != static_cast<int64_t>(dims->size()))
    return Unimplemented(n.Describe(),
                         ": Tile's gradient needs a static input shape and constant repeats");
  std::vector<int64_t> split, axes;
  for (size_t k = 0; k < dims->size(); ++k) {
    axes.push_back(static_cast<int64_t>(2 * k));
    split.push_back(repeats->GetInt(static_cast<int64_t>(k)));
    split.push_back((*dims)[k]);
  }
  Value* r = b.Op("Reshape", {b.dy(0), b.Ints(split)});
  Value* sum = b.Reduce("ReduceSum", r, axes, false);
  b.dx = {sum, nullptr};
  return Status::Ok();
}

Status GradSlice(G& b) {
  const Node& n = b.node();
  auto dims = StaticDims(ShapeOrDie(b.x(0)));
  auto out = StaticDims(ShapeOrDie(b.y(0)));
  std::optional<Tensor> starts = ConstInput(b.x(1));
  std::optional<Tensor> ends = ConstInput(b.x(2));
  std::optional<Tensor> axes = n.num_inputs() > 3 ? ConstInput(b.x(3)) : std::nullopt;
  std::optional<Tensor> steps = n.num_inputs() > 4 ? ConstInput(b.x(4)) : std::nullopt;
  if (!dims || !out || !starts || !ends || (n.num_inputs() > 3 && n.input(3) && !axes) ||
      (n.num_inputs() > 4 && n.input(4) && !steps))
    return Unimplemented(
        n.Describe(),
        ": Slice's gradient needs a static input shape and constant starts, ends, axes, steps");
  int64_t rank = static_cast<int64_t>(dims->size());
  std::vector<int64_t> pads(2 * rank, 0);
  std::vector<int64_t> cur = *out;  // the shape of the gradient built so far
  Value* g = b.dy(0);
  for (int64_t k = 0; k < starts->num_elements(); ++k) {
    int64_t step = steps ? steps->GetInt(k) : 1;
    if (step == 0) return InvalidArgument(n.Describe(), ": Slice step 0");
    int64_t a = axes ? axes->GetInt(k) : k;
    if (a < 0) a += rank;
    int64_t d = (*dims)[a];
    int64_t s = starts->GetInt(k);
    if (s < 0) s += d;
    int64_t m = cur[a];  // elements taken along the axis
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, d);
    } else {
      // A negative step (torch.flip, x[::-1]) takes s, s - |step|, ...: the
      // same elements as the positive step |step| from the lowest of them,
      // in reverse, so dy is reversed first.
      s = std::clamp<int64_t>(s, 0, d - 1);
      step = -step;
      if (m > 0) {
        g = b.Op("Slice", {g, b.Ints({-1}), b.Ints({std::numeric_limits<int64_t>::min()}),
                           b.Ints({a}), b.Ints({-1})});
        s -= step * (m - 1);
      }
    }
    int64_t span = m;  // positions they cover, from s
    if (step > 1 && m > 0) {
      Value* u = b.Op("Unsqueeze", {g, b.Ints({a + 1})});
      std::vector<int64_t> spread(2 * (rank + 1), 0);
      spread[(a + 1) + (rank + 1)] = step - 1;
      u = b.Op("Pad", {u, b.Ints(spread)});
      std::vector<int64_t> shape = cur;
      shape[a] = m * step;
      g = b.Op("Reshape", {u, b.Ints(shape)});
      span = std::min(m * step, d - s);
      if (span < m * step) g = b.Op("Slice", {g, b.Ints({0}), b.Ints({span}), b.Ints({a})});
      cur[a] = span;
    }
    pads[a] = s;
    pads[a + rank] = d - s - span;
  }
  b.dx.assign(n.num_inputs(), nullptr);
  b.dx[0] = b.Op("Pad", {g, b.Ints(pads)});
  return Status::Ok();
}

}  // namespace

std::vector<OpDef> DataOps() {
  return {
      {.op_type = "Reshape",
       .arity = {2, 2, 1, 1},
       .infer = InferReshape,
       .precision = {OpClass::kClear, "data movement"},
       .shape_inputs = {1},
       .grad = GradReshape,
       .nondiff_inputs = {1},
       .grad_reads_shapes = false},
      {.op_type = "Flatten",
       .arity = {1, 1, 1, 1},
       .infer = InferFlatten,
       .precision = {OpClass::kClear, "data movement"},
       .grad = GradReshape,
       .grad_reads_shapes = false},
      {.op_type = "Transpose",
       .arity = {1, 1, 1, 1},
       .infer = InferTranspose,
       .precision = {OpClass::kClear, "data movement"},
       .grad = GradTranspose},
      {.op_type = "Squeeze",
       .arity = {1, 2, 1, 1},
       .infer = InferSqueeze,
       .precision = {OpClass::kClear, "data movement"},
       .shape_inputs = {1},
       .grad = GradReshape,
       .nondiff_inputs = {1},
       .grad_reads_shapes = false},
      {.op_type = "Unsqueeze",
       .arity = {2, 2, 1, 1},
       .infer = InferUnsqueeze,
       .precision = {OpClass::kClear, "data movement"},
       .shape_inputs = {1},
       .grad = GradReshape,
       .nondiff_inputs = {1},
       .grad_reads_shapes = false},
      {.op_type = "Concat",
       .arity = {1, -1, 1, 1},
       .infer = InferConcat,
       .precision = {OpClass::kClear, "data movement"},
       .grad = GradConcat},
      {.op_type = "Split",
       .arity = {1, 2, 1, -1},
       .infer = InferSplit,
       .precision = {OpClass::kClear, "data movement"},
       .shape_inputs = {1},
       .grad = GradSplit,
       .nondiff_inputs = {1}},
      {.op_type = "Slice",
       .arity = {3, 5, 1, 1},
       .infer = InferSlice,
       .precision = {OpClass::kClear, "data movement"},
       .shape_inputs = {1, 2, 3, 4},
       .grad = GradSlice,
       .nondiff_inputs = {1, 2, 3, 4}},
      {.op_type = "Gather",
       .arity = {2, 2, 1, 1},
       .infer = InferGather,
       .precision = {OpClass::kClear, "data movement"},
       .shape_inputs = {1},
       .grad = GradGather,
       .nondiff_inputs = {1}},
      {.op_type = "GatherElements",
       .arity = {2, 2, 1, 1},
       .infer = InferGatherElements,
       .precision = {OpClass::kClear, "data movement"},
       .shape_inputs = {1},
       .grad = GradGatherElements,
       .nondiff_inputs = {1}},
      {.op_type = "ScatterElements",
       .arity = {3, 3, 1, 1},
       .infer = InferScatterElements,
       .precision = {OpClass::kFp32, "scatter-add accumulates gradients: FP32"},
       .shape_inputs = {1},
       .grad = GradScatter,
       .nondiff_inputs = {1},
       .inplace = InplaceScatter},
      {.op_type = "GatherND",
       .arity = {2, 2, 1, 1},
       .infer = InferGatherND,
       .precision = {OpClass::kClear, "data movement"},
       .shape_inputs = {1},
       .grad = GradGatherND,
       .nondiff_inputs = {1}},
      {.op_type = "ScatterND",
       .arity = {3, 3, 1, 1},
       .infer = InferScatterElements,
       .precision = {OpClass::kFp32, "scatter-add accumulates gradients: FP32"},
       .grad = GradScatter,
       .nondiff_inputs = {1},
       .inplace = InplaceScatter},
      {.op_type = "Expand",
       .arity = {2, 2, 1, 1},
       .infer = InferExpand,
       .precision = {OpClass::kClear, "data movement"},
       .shape_inputs = {1},
       .grad = GradExpand,
       .nondiff_inputs = {1}},
      {.op_type = "Tile",
       .arity = {2, 2, 1, 1},
       .infer = InferTile,
       .precision = {OpClass::kClear, "data movement"},
       .shape_inputs = {1},
       .grad = GradTile,
       .nondiff_inputs = {1}},
      {.op_type = "Pad",
       .arity = {2, 4, 1, 1},
       .infer = InferPad,
       .precision = {OpClass::kClear, "data movement"},
       .shape_inputs = {1, 3},
       .grad = GradPad,
       .nondiff_inputs = {1, 2, 3}},
      {.op_type = "Shape",
       .arity = {1, 1, 1, 1},
       .infer = InferShape,
       .precision = {OpClass::kNone, "reads only the shape"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "Size",
       .arity = {1, 1, 1, 1},
       .infer = InferSize,
       .precision = {OpClass::kNone, "reads only the shape"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "Constant",
       .arity = {0, 0, 1, 1},
       .infer = InferConstant,
       .precision = {OpClass::kNone, "constants are converted at compile time"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "ConstantOfShape",
       .arity = {1, 1, 1, 1},
       .infer = InferConstantOfShape,
       .precision = {OpClass::kNone, "a constant"},
       .shape_inputs = {0},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "Range",
       .arity = {3, 3, 1, 1},
       .infer = InferRange,
       .precision = {OpClass::kFp32, "index arithmetic"},
       .shape_inputs = {0, 1, 2},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "OneHot",
       .arity = {3, 3, 1, 1},
       .infer = InferOneHot,
       .precision = {OpClass::kNone, "writes its values input at indices"},
       .shape_inputs = {0, 1},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "NonZero",
       .arity = {1, 1, 1, 1},
       .infer = InferNonZero,
       .precision = {OpClass::kFp32, "not in any list: kept in FP32"},
       .no_grad = "not differentiable: its outputs are integers, booleans, shapes or constants"},
      {.op_type = "Trilu",
       .arity = {1, 2, 1, 1},
       .infer = InferTrilu,
       .precision = {OpClass::kClear, "data movement"},
       .shape_inputs = {1},
       .no_grad = "no gradient rule yet"},
  };
}

}  // namespace amp
