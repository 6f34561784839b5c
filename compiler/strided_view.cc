#include "compiler/strided_view.h"

#include <numeric>
#include <sstream>

#include "compiler/const_eval.h"

namespace amp {
namespace {

std::vector<int64_t> ContiguousStrides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t a = dims.size(); a-- > 1;) s[a - 1] = s[a] * dims[a];
  return s;
}

// A view of a tensor of dims D as a multi-index origin plus, per view dim, a
// step along one axis of D: element i is at origin + sum_k i_k * coef_k
// along axis_k (size-1 view dims step along none: axis -1). Only views whose
// every element stays inside D without carrying from one axis into the next
// have this form; they are the ones a permutation of axes can move.
struct AxisForm {
  std::vector<int64_t> origin;  // per axis of D
  std::vector<int> axis;        // per view dim
  std::vector<int64_t> coef;    // per view dim
};

std::optional<AxisForm> Factor(const StridedView& v, const std::vector<int64_t>& dims) {
  int64_t numel = 1;
  for (int64_t d : dims) numel *= d;
  if (v.offset < 0 || (v.num_elements() > 0 && v.last_index() >= numel)) return std::nullopt;
  std::vector<int64_t> c = ContiguousStrides(dims);
  AxisForm f;
  f.origin.resize(dims.size());
  for (size_t a = 0; a < dims.size(); ++a) f.origin[a] = (v.offset / c[a]) % dims[a];
  std::vector<int64_t> extent(dims.size(), 0);
  for (size_t k = 0; k < v.sizes.size(); ++k) {
    int64_t n = v.sizes[k], st = v.strides[k];
    if (n == 1) {
      f.axis.push_back(-1);
      f.coef.push_back(0);
      continue;
    }
    if (st <= 0) return std::nullopt;  // broadcast or reversed: not a layout
    int best = -1;
    for (size_t a = 0; a < dims.size(); ++a)
      if (dims[a] > 1 && c[a] <= st && st % c[a] == 0 && (best < 0 || c[a] > c[best]))
        best = static_cast<int>(a);
    if (best < 0) return std::nullopt;
    f.axis.push_back(best);
    f.coef.push_back(st / c[best]);
    extent[best] += st / c[best] * (n - 1);
  }
  for (size_t a = 0; a < dims.size(); ++a)
    if (f.origin[a] + extent[a] >= dims[a]) return std::nullopt;
  return f;
}

StridedView Unfactor(const AxisForm& f, const std::vector<int64_t>& sizes,
                     const std::vector<int64_t>& dims) {
  std::vector<int64_t> c = ContiguousStrides(dims);
  StridedView v;
  v.sizes = sizes;
  for (size_t a = 0; a < dims.size(); ++a) v.offset += f.origin[a] * c[a];
  for (size_t k = 0; k < sizes.size(); ++k)
    v.strides.push_back(f.axis[k] < 0 ? 0 : f.coef[k] * c[f.axis[k]]);
  return v;
}

// Moves form f of a tensor of rank `from_rank` onto one whose axis map[a]
// is axis a of the old (map[a] < 0: the old axis a has size 1 and goes),
// with the new axes not in map at origin `fill` (per new axis, -1 = 0).
AxisForm MapAxes(const AxisForm& f, const std::vector<int>& map, size_t to_rank,
                 const std::vector<int64_t>& fill) {
  AxisForm g;
  g.origin.assign(to_rank, 0);
  for (size_t a = 0; a < to_rank && a < fill.size(); ++a)
    if (fill[a] >= 0) g.origin[a] = fill[a];
  for (size_t a = 0; a < map.size(); ++a)
    if (map[a] >= 0) g.origin[map[a]] += f.origin[a];
  for (size_t k = 0; k < f.axis.size(); ++k) {
    g.axis.push_back(f.axis[k] < 0 ? -1 : map[f.axis[k]]);
    g.coef.push_back(f.coef[k]);
  }
  return g;
}

std::optional<std::vector<int64_t>> ConstInts(const Value* v) {
  if (!v) return std::nullopt;
  std::optional<Tensor> t;
  if (v->initializer())
    t = *v->initializer();
  else
    t = ConstantNodeTensor(v);
  if (!t || !IsInteger(t->dtype())) return std::nullopt;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < t->num_elements(); ++i) out.push_back(t->GetInt(i));
  return out;
}

bool IsStorageView(const Node& n) {  // the output is the input's storage
  for (const char* op : {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
    if (IsDefaultOp(&n, op)) return true;
  return false;
}

// Per input axis, where the slice of `n` (Slice or Split output `output`)
// starts and how it steps; nullopt when not constant and positive.
std::optional<std::pair<std::vector<int64_t>, std::vector<int64_t>>> SliceStarts(
    const Node& n, int output, const std::vector<int64_t>& in) {
  size_t r = in.size();
  std::vector<int64_t> start(r, 0), step(r, 1);
  if (IsDefaultOp(&n, "Split")) {
    int64_t axis = n.GetInt("axis", 0);
    if (axis < 0) axis += static_cast<int64_t>(r);
    if (axis < 0 || axis >= static_cast<int64_t>(r)) return std::nullopt;
    for (int j = 0; j < output; ++j) {
      auto d = StaticDimsOf(n.output(j));
      if (!d || d->size() != r) return std::nullopt;
      start[axis] += (*d)[axis];
    }
    return std::make_pair(start, step);
  }
  auto starts = ConstInts(n.input(1));
  if (!starts) return std::nullopt;
  std::vector<int64_t> axes(starts->size());
  std::iota(axes.begin(), axes.end(), 0);
  if (n.input(3)) {
    auto a = ConstInts(n.input(3));
    if (!a || a->size() != starts->size()) return std::nullopt;
    axes = *a;
  }
  std::vector<int64_t> steps(starts->size(), 1);
  if (n.input(4)) {
    auto s = ConstInts(n.input(4));
    if (!s || s->size() != starts->size()) return std::nullopt;
    steps = *s;
  }
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = axes[i] < 0 ? axes[i] + static_cast<int64_t>(r) : axes[i];
    if (a < 0 || a >= static_cast<int64_t>(r) || steps[i] <= 0) return std::nullopt;
    int64_t s = (*starts)[i];
    if (s < 0) s += in[a];
    start[a] = std::clamp<int64_t>(s, 0, in[a]);
    step[a] = steps[i];
  }
  return std::make_pair(start, step);
}

}  // namespace

StridedView StridedView::Contiguous(const std::vector<int64_t>& dims) {
  return {0, dims, ContiguousStrides(dims)};
}

int64_t StridedView::num_elements() const {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  return n;
}

int64_t StridedView::last_index() const {
  int64_t i = offset;
  for (size_t k = 0; k < sizes.size(); ++k)
    if (sizes[k] > 0) i += (sizes[k] - 1) * strides[k];
  return i;
}

std::string StridedView::ToString() const {
  std::ostringstream s;
  s << "offset " << offset << ", [";
  for (size_t k = 0; k < sizes.size(); ++k) s << (k ? "x" : "") << sizes[k];
  s << " : ";
  for (size_t k = 0; k < strides.size(); ++k) s << (k ? ", " : "") << strides[k];
  s << "]";
  return s.str();
}

bool IsLayoutOp(const Node& n) {
  if (IsStorageView(n)) return true;
  for (const char* op : {"Transpose", "Gather", "Slice", "Split", "Concat"})
    if (IsDefaultOp(&n, op)) return true;
  return false;
}

std::optional<StridedView> ContiguousViewOf(const Value* v) {
  auto d = StaticDimsOf(v);
  if (!d) return std::nullopt;
  return StridedView::Contiguous(*d);
}

std::optional<StridedView> ViewThroughProducer(const Node& n, int output, const StridedView& view) {
  auto out = StaticDimsOf(n.output(output));
  auto in = StaticDimsOf(n.input(0));
  if (!out || !in || !IsLayoutOp(n)) return std::nullopt;
  if (IsStorageView(n)) return view;
  auto f = Factor(view, *out);
  if (!f) return std::nullopt;
  if (IsDefaultOp(&n, "Transpose")) {
    std::vector<int64_t> perm = n.GetInts("perm");
    if (!n.HasAttr("perm"))
      for (size_t a = out->size(); a-- > 0;) perm.push_back(static_cast<int64_t>(a));
    if (perm.size() != out->size()) return std::nullopt;
    std::vector<int> map(perm.begin(), perm.end());  // out axis a is in axis perm[a]
    return Unfactor(MapAxes(*f, map, in->size(), {}), view.sizes, *in);
  }
  if (IsDefaultOp(&n, "Gather")) {
    auto idx = ConstInts(n.input(1));
    auto idx_dims = StaticDimsOf(n.input(1));
    int64_t r = static_cast<int64_t>(in->size());
    int64_t g = n.GetInt("axis", 0);
    if (g < 0) g += r;
    if (!idx || idx->size() != 1 || !idx_dims || idx_dims->size() > 1 || g < 0 || g >= r)
      return std::nullopt;
    int64_t i = (*idx)[0] < 0 ? (*idx)[0] + (*in)[g] : (*idx)[0];
    if (i < 0 || i >= (*in)[g]) return std::nullopt;
    std::vector<int> map;
    for (int64_t a = 0; a < static_cast<int64_t>(out->size()); ++a)
      map.push_back(static_cast<int>(idx_dims->empty() && a >= g ? a + 1 : a));
    std::vector<int64_t> fill(in->size(), -1);
    fill[g] = i;
    return Unfactor(MapAxes(*f, map, in->size(), fill), view.sizes, *in);
  }
  if (IsDefaultOp(&n, "Slice") || IsDefaultOp(&n, "Split")) {
    if (out->size() != in->size()) return std::nullopt;
    auto ss = SliceStarts(n, output, *in);
    if (!ss) return std::nullopt;
    const auto& [start, step] = *ss;
    AxisForm g = *f;
    for (size_t a = 0; a < in->size(); ++a) g.origin[a] = start[a] + f->origin[a] * step[a];
    for (size_t k = 0; k < g.axis.size(); ++k)
      if (g.axis[k] >= 0) g.coef[k] *= step[g.axis[k]];
    // The slice's last element is inside the input.
    StridedView v = Unfactor(g, view.sizes, *in);
    if (!Factor(v, *in)) return std::nullopt;
    return v;
  }
  return std::nullopt;  // Concat: which input holds the view is not one answer
}

std::optional<StridedView> ViewThroughConsumer(const Node& n, size_t input,
                                               const StridedView& view) {
  auto out = StaticDimsOf(n.output(0));
  auto in = StaticDimsOf(n.input(input));
  if (!out || !in || !IsLayoutOp(n)) return std::nullopt;
  if (IsStorageView(n)) return input == 0 ? std::optional<StridedView>(view) : std::nullopt;
  auto f = Factor(view, *in);
  if (!f) return std::nullopt;
  if (IsDefaultOp(&n, "Transpose")) {
    std::vector<int64_t> perm = n.GetInts("perm");
    if (!n.HasAttr("perm"))
      for (size_t a = in->size(); a-- > 0;) perm.push_back(static_cast<int64_t>(a));
    if (perm.size() != in->size() || input != 0) return std::nullopt;
    std::vector<int> map(in->size());  // in axis perm[a] is out axis a
    for (size_t a = 0; a < perm.size(); ++a) map[perm[a]] = static_cast<int>(a);
    return Unfactor(MapAxes(*f, map, out->size(), {}), view.sizes, *out);
  }
  if (IsDefaultOp(&n, "Concat")) {
    int64_t r = static_cast<int64_t>(in->size());
    int64_t c = n.GetInt("axis", 0);
    if (c < 0) c += r;
    if (c < 0 || c >= r || out->size() != in->size()) return std::nullopt;
    std::vector<int64_t> fill(in->size(), -1);
    fill[c] = 0;
    for (size_t j = 0; j < input; ++j) {
      auto d = StaticDimsOf(n.input(j));
      if (!d || d->size() != in->size()) return std::nullopt;
      fill[c] += (*d)[c];
    }
    std::vector<int> map(in->size());
    std::iota(map.begin(), map.end(), 0);
    return Unfactor(MapAxes(*f, map, out->size(), fill), view.sizes, *out);
  }
  return std::nullopt;  // Gather, Slice, Split: not every element goes on
}

std::optional<ValueView> ReadView(Value* v) {
  auto start = ContiguousViewOf(v);
  if (!start) return std::nullopt;
  return ReadView(v, *start);
}

std::optional<ValueView> ReadView(Value* v, const StridedView& start) {
  if (!StaticDimsOf(v)) return std::nullopt;
  ValueView out{v, start, {}};
  for (Node* p = v->producer(); p && IsLayoutOp(*p); p = out.base->producer()) {
    auto next = ViewThroughProducer(*p, out.base->producer_index(), out.view);
    if (!next) break;
    out.walked.push_back(p);
    out.base = p->input(0);
    out.view = *next;
  }
  return out;
}

}  // namespace amp
