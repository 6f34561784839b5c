#include "compiler/const_eval.h"

#include <cmath>
#include <functional>
#include <set>
#include <type_traits>

namespace amp {
namespace {

const std::set<std::string>& EvaluableOps() {
  static const std::set<std::string> ops = {"Identity",    "Cast",
                                            "Neg",         "Abs",
                                            "Sqrt",        "Floor",
                                            "Ceil",        "Not",
                                            "Reciprocal",  "Add",
                                            "Sub",         "Mul",
                                            "Div",         "Mod",
                                            "Pow",         "Max",
                                            "Min",         "Equal",
                                            "Less",        "Greater",
                                            "LessOrEqual", "GreaterOrEqual",
                                            "And",         "Or",
                                            "Where",       "Reshape",
                                            "Flatten",     "Squeeze",
                                            "Unsqueeze",   "Concat",
                                            "Gather",      "Slice",
                                            "Transpose",   "ConstantOfShape",
                                            "Range",       "Expand",
                                            "Constant"};
  return ops;
}

std::vector<int64_t> Strides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (int64_t k = static_cast<int64_t>(dims.size()) - 2; k >= 0; --k)
    s[k] = s[k + 1] * dims[k + 1];
  return s;
}

// Flat index into an input of `in_dims` broadcast to `out_dims`, for output multi-index `idx`.
int64_t BroadcastIndex(const std::vector<int64_t>& idx, const std::vector<int64_t>& in_dims) {
  size_t off = idx.size() - in_dims.size();
  int64_t flat = 0;
  for (size_t k = 0; k < in_dims.size(); ++k)
    flat = flat * in_dims[k] + (in_dims[k] == 1 ? 0 : idx[off + k]);
  return flat;
}

void Unflatten(int64_t i, const std::vector<int64_t>& dims, std::vector<int64_t>& idx) {
  idx.resize(dims.size());
  for (int64_t k = static_cast<int64_t>(dims.size()) - 1; k >= 0; --k) {
    idx[k] = dims[k] ? i % dims[k] : 0;
    i = dims[k] ? i / dims[k] : 0;
  }
}

Tensor Relabel(const Tensor& in, DType dtype, const std::vector<int64_t>& dims) {
  Tensor out(dtype, dims);
  if (out.nbytes()) std::memcpy(out.mutable_data(), in.data(), out.nbytes());
  return out;
}

int64_t FloorMod(int64_t a, int64_t b) {
  int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

// One binary op on two elements, in int64 or in double.
template <typename T>
T ApplyBinary(const std::string& op, T x, T y, bool fmod) {
  if (op == "Add") return x + y;
  if (op == "Sub") return x - y;
  if (op == "Mul") return x * y;
  if (op == "Div") return x / y;
  if (op == "Mod") {
    if constexpr (std::is_integral_v<T>)
      return fmod ? x % y : FloorMod(x, y);
    else
      return std::fmod(x, y);
  }
  if (op == "Pow") return static_cast<T>(std::pow(static_cast<double>(x), static_cast<double>(y)));
  if (op == "Max") return std::max(x, y);
  if (op == "Min") return std::min(x, y);
  if (op == "Equal") return x == y;
  if (op == "Less") return x < y;
  if (op == "Greater") return x > y;
  if (op == "LessOrEqual") return x <= y;
  if (op == "GreaterOrEqual") return x >= y;
  if (op == "And") return x != 0 && y != 0;
  return x != 0 || y != 0;  // Or
}

}  // namespace

StatusOr<Tensor> ConstantNodeValue(const Node& n) {
  if (n.attributes().size() != 1)
    return InvalidArgument(n.Describe(), ": Constant needs exactly one value attribute");
  const auto& [name, a] = *n.attributes().begin();
  if (name == "value" && a.kind == Attribute::Kind::kTensor) return a.t;
  if (name == "value_float" && a.kind == Attribute::Kind::kFloat)
    return Tensor::FromVector<float>(DType::kFloat32, {}, {a.f});
  if (name == "value_floats" && a.kind == Attribute::Kind::kFloats)
    return Tensor::FromVector<float>(DType::kFloat32, {static_cast<int64_t>(a.floats.size())},
                                     a.floats);
  if (name == "value_int" && a.kind == Attribute::Kind::kInt)
    return Tensor::FromVector<int64_t>(DType::kInt64, {}, {a.i});
  if (name == "value_ints" && a.kind == Attribute::Kind::kInts)
    return Tensor::FromVector<int64_t>(DType::kInt64, {static_cast<int64_t>(a.ints.size())},
                                       a.ints);
  return Unimplemented(n.Describe(), ": Constant attribute '", name, "' is not supported");
}

std::optional<Tensor> ConstantNodeTensor(const Value* v) {
  const Node* p = ProducerIf(v, "Constant");
  if (!p) return std::nullopt;
  auto t = ConstantNodeValue(*p);
  if (!t.ok()) return std::nullopt;
  return *t;
}

std::optional<double> ConstantNodeScalar(const Value* v) {
  auto t = ConstantNodeTensor(v);
  if (!t || t->num_elements() != 1) return std::nullopt;
  return t->GetDouble(0);
}

std::optional<std::vector<int64_t>> ConstantReduceAxes(const Node& r, int64_t rank) {
  std::vector<int64_t> axes = r.GetInts("axes");
  if (!r.HasAttr("axes") && r.input(1)) {
    auto t = ConstantNodeTensor(r.input(1));
    if (!t) return std::nullopt;
    for (int64_t i = 0; i < t->num_elements(); ++i) axes.push_back(t->GetInt(i));
  }
  if (axes.empty()) {
    if (r.GetInt("noop_with_empty_axes", 0) != 0) return axes;
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
  }
  std::set<int64_t> s;
  for (int64_t a : axes) {
    int64_t k = a < 0 ? a + rank : a;
    if (k < 0 || k >= rank) return std::nullopt;
    s.insert(k);
  }
  return std::vector<int64_t>(s.begin(), s.end());
}

bool CanEvaluate(const std::string& op_type) { return EvaluableOps().count(op_type) != 0; }

StatusOr<std::optional<std::vector<Tensor>>> EvaluateNode(
    const Node& node, const std::vector<const Tensor*>& in,
    const std::vector<TensorType>& out_types) {
  using Result = std::optional<std::vector<Tensor>>;
  const std::string& op = node.op_type();
  if (!CanEvaluate(op) || out_types.size() != 1) return Result();
  auto dims_opt = out_types[0].shape ? StaticDims(*out_types[0].shape) : std::nullopt;
  if (!dims_opt) return Result();
  const std::vector<int64_t>& dims = *dims_opt;
  DType dtype = out_types[0].dtype;
  if (DTypeSize(dtype) == 0) return Result();
  auto n = StaticNumElements(*out_types[0].shape);
  if (!n || *n > kMaxFoldElements) return Result();
  for (const Tensor* t : in)
    if (t && t->num_elements() > kMaxFoldElements) return Result();
  auto need = [&](size_t i) -> const Tensor* { return i < in.size() ? in[i] : nullptr; };
  Tensor out(dtype, dims);
  std::vector<int64_t> idx;

  // Reinterpreting ops: same data, new shape.
  if (op == "Identity" || op == "Reshape" || op == "Flatten" || op == "Squeeze" ||
      op == "Unsqueeze") {
    if (!need(0)) return Result();
    return Result(std::vector<Tensor>{Relabel(*in[0], dtype, dims)});
  }
  if (op == "Cast") {
    const Tensor& x = *in[0];
    bool ints = (IsInteger(x.dtype()) || x.dtype() == DType::kBool) && IsInteger(dtype);
    for (int64_t i = 0; i < *n; ++i) {
      if (ints && dtype == DType::kInt64) {
        int64_t v = x.GetInt(i);
        std::memcpy(out.mutable_data() + i * 8, &v, 8);
      } else {
        out.SetDouble(i, x.GetDouble(i));
      }
    }
    return Result(std::vector<Tensor>{std::move(out)});
  }
  static const std::set<std::string> kUnary = {"Neg",  "Abs", "Sqrt",      "Floor",
                                               "Ceil", "Not", "Reciprocal"};
  if (kUnary.count(op)) {
    const Tensor& x = *in[0];
    bool integer = IsInteger(dtype);
    for (int64_t i = 0; i < *n; ++i) {
      if (integer && dtype == DType::kInt64) {
        int64_t v = x.GetInt(i);
        int64_t r = op == "Neg" ? -v : op == "Abs" ? (v < 0 ? -v : v) : v;
        if (op == "Sqrt" || op == "Reciprocal") return Result();
        std::memcpy(out.mutable_data() + i * 8, &r, 8);
        continue;
      }
      double v = x.GetDouble(i), r;
      if (op == "Neg")
        r = -v;
      else if (op == "Abs")
        r = std::fabs(v);
      else if (op == "Sqrt")
        r = std::sqrt(v);
      else if (op == "Floor")
        r = std::floor(v);
      else if (op == "Ceil")
        r = std::ceil(v);
      else if (op == "Reciprocal")
        r = 1.0 / v;
      else
        r = v == 0 ? 1 : 0;  // Not
      out.SetDouble(i, r);
    }
    return Result(std::vector<Tensor>{std::move(out)});
  }
  static const std::set<std::string> kBinary = {"Add",
                                                "Sub",
                                                "Mul",
                                                "Div",
                                                "Mod",
                                                "Pow",
                                                "Max",
                                                "Min",
                                                "Equal",
                                                "Less",
                                                "Greater",
                                                "LessOrEqual",
                                                "GreaterOrEqual",
                                                "And",
                                                "Or"};
  if (kBinary.count(op)) {
    if (!need(0) || !need(1)) return Result();
    if ((op == "Max" || op == "Min") && in.size() != 2) return Result();
    const Tensor& a = *in[0];
    const Tensor& b = *in[1];
    bool integer = IsInteger(a.dtype());
    bool fmod = node.GetInt("fmod", 0) != 0;
    for (int64_t i = 0; i < *n; ++i) {
      Unflatten(i, dims, idx);
      int64_t ia = BroadcastIndex(idx, a.dims()), ib = BroadcastIndex(idx, b.dims());
      if (integer && op != "Pow") {
        int64_t x = a.GetInt(ia), y = b.GetInt(ib);
        if ((op == "Div" || op == "Mod") && y == 0)
          return InvalidArgument(node.Describe(),
                                 ": integer division by zero in a constant expression");
        int64_t r = ApplyBinary<int64_t>(op, x, y, fmod);
        if (dtype == DType::kInt64)
          std::memcpy(out.mutable_data() + i * 8, &r, 8);
        else
          out.SetDouble(i, static_cast<double>(r));
        continue;
      }
      double r = ApplyBinary<double>(op, a.GetDouble(ia), b.GetDouble(ib), fmod);
      // Float results are computed in double and rounded once to the output type.
      out.SetDouble(i, r);
    }
    return Result(std::vector<Tensor>{std::move(out)});
  }
  size_t esize = DTypeSize(dtype);
  auto copy_elem = [&](const Tensor& src, int64_t from, int64_t to) {
    std::memcpy(out.mutable_data() + to * esize, src.data() + from * esize, esize);
  };
  if (op == "Where") {
    if (!need(0) || !need(1) || !need(2)) return Result();
    for (int64_t i = 0; i < *n; ++i) {
      Unflatten(i, dims, idx);
      bool cond = in[0]->GetInt(BroadcastIndex(idx, in[0]->dims())) != 0;
      const Tensor& src = cond ? *in[1] : *in[2];
      copy_elem(src, BroadcastIndex(idx, src.dims()), i);
    }
    return Result(std::vector<Tensor>{std::move(out)});
  }
  if (op == "Expand") {
    for (int64_t i = 0; i < *n; ++i) {
      Unflatten(i, dims, idx);
      copy_elem(*in[0], BroadcastIndex(idx, in[0]->dims()), i);
    }
    return Result(std::vector<Tensor>{std::move(out)});
  }
  if (op == "Concat") {
    int64_t rank = static_cast<int64_t>(dims.size());
    int64_t axis = node.GetInt("axis", 0);
    if (axis < 0) axis += rank;
    int64_t offset = 0;
    for (const Tensor* t : in) {
      if (!t) return Result();
      for (int64_t i = 0; i < t->num_elements(); ++i) {
        Unflatten(i, t->dims(), idx);
        idx[axis] += offset;
        int64_t flat = 0;
        for (int64_t k = 0; k < rank; ++k) flat = flat * dims[k] + idx[k];
        copy_elem(*t, i, flat);
      }
      offset += t->dims()[axis];
    }
    return Result(std::vector<Tensor>{std::move(out)});
  }
  if (op == "Gather") {
    const Tensor& x = *in[0];
    const Tensor& ids = *in[1];
    int64_t rank = static_cast<int64_t>(x.dims().size());
    int64_t axis = node.GetInt("axis", 0);
    if (axis < 0) axis += rank;
    int64_t outer = 1, inner = 1, n_axis = x.dims()[axis];
    for (int64_t k = 0; k < axis; ++k) outer *= x.dims()[k];
    for (int64_t k = axis + 1; k < rank; ++k) inner *= x.dims()[k];
    int64_t to = 0;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < ids.num_elements(); ++j) {
        int64_t g = ids.GetInt(j);
        if (g < -n_axis || g >= n_axis)
          return InvalidArgument(node.Describe(), ": index ", g, " is out of range for ", n_axis);
        if (g < 0) g += n_axis;
        for (int64_t q = 0; q < inner; ++q) copy_elem(x, (o * n_axis + g) * inner + q, to++);
      }
    return Result(std::vector<Tensor>{std::move(out)});
  }
  if (op == "Slice") {
    const Tensor& x = *in[0];
    int64_t rank = static_cast<int64_t>(x.dims().size());
    std::vector<int64_t> start(rank, 0), step(rank, 1);
    auto starts = need(1), ends = need(2), axes = need(3), steps = need(4);
    if (!starts || !ends || (node.input(3) && !axes) || (node.input(4) && !steps)) return Result();
    for (int64_t k = 0; k < starts->num_elements(); ++k) {
      int64_t a = axes ? axes->GetInt(k) : k;
      if (a < 0) a += rank;
      int64_t d = x.dims()[a], s = starts->GetInt(k), st = steps ? steps->GetInt(k) : 1;
      if (s < 0) s += d;
      s = st > 0 ? std::clamp<int64_t>(s, 0, d) : std::clamp<int64_t>(s, -1, d - 1);
      start[a] = s;
      step[a] = st;
    }
    std::vector<int64_t> xs = Strides(x.dims());
    for (int64_t i = 0; i < *n; ++i) {
      Unflatten(i, dims, idx);
      int64_t flat = 0;
      for (int64_t k = 0; k < rank; ++k) flat += (start[k] + idx[k] * step[k]) * xs[k];
      copy_elem(x, flat, i);
    }
    return Result(std::vector<Tensor>{std::move(out)});
  }
  if (op == "Transpose") {
    const Tensor& x = *in[0];
    int64_t rank = static_cast<int64_t>(x.dims().size());
    std::vector<int64_t> perm = node.GetInts("perm");
    if (perm.empty())
      for (int64_t k = rank - 1; k >= 0; --k) perm.push_back(k);
    std::vector<int64_t> xs = Strides(x.dims());
    for (int64_t i = 0; i < *n; ++i) {
      Unflatten(i, dims, idx);
      int64_t flat = 0;
      for (int64_t k = 0; k < rank; ++k) flat += idx[k] * xs[perm[k]];
      copy_elem(x, flat, i);
    }
    return Result(std::vector<Tensor>{std::move(out)});
  }
  if (op == "ConstantOfShape") {
    if (const Attribute* a = node.FindAttr("value"))
      for (int64_t i = 0; i < *n; ++i)
        std::memcpy(out.mutable_data() + i * esize, a->t.data(), esize);
    return Result(std::vector<Tensor>{std::move(out)});
  }
  if (op == "Range") {
    double start = in[0]->GetDouble(0), delta = in[2]->GetDouble(0);
    for (int64_t i = 0; i < *n; ++i) {
      if (IsInteger(dtype) && dtype == DType::kInt64) {
        int64_t v = in[0]->GetInt(0) + i * in[2]->GetInt(0);
        std::memcpy(out.mutable_data() + i * 8, &v, 8);
      } else {
        out.SetDouble(i, start + static_cast<double>(i) * delta);
      }
    }
    return Result(std::vector<Tensor>{std::move(out)});
  }
  if (op == "Constant") return Result();  // the inference function already provides it
  return Result();
}

}  // namespace amp
