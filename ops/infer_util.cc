// Helpers shared by the ops' inference functions (ops/*.cc).
#include "ops/infer_util.h"

#include <algorithm>

namespace amp {

using Ctx = InferenceContext;

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

Status InferUnary(Ctx& c) {
  c.SetOutput(0, c.input_dtype(0), c.input_shape(0));
  return Status::Ok();
}

Status InferUnaryFloat(Ctx& c) {
  AMP_RETURN_IF_ERROR(RequireFloat(c, 0));
  return InferUnary(c);
}

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

int64_t StaticNumel(const Value& v) {
  if (!v.type().shape) return 0;
  auto dims = StaticDims(*v.type().shape);
  if (!dims) return 0;
  int64_t n = 1;
  for (int64_t d : *dims) n *= d;
  return n;
}

}  // namespace amp
