// Data movement, shape and index kernels: Reshape and friends, Transpose,
// Concat, Split, Slice, Gather(Elements), Scatter(Elements|ND), Expand,
// Tile, Pad, Shape, Size, Constant(OfShape), Range, OneHot, Trilu, Dropout.
// They move bytes, so they work on every element type.
#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/cpu/families.h"
#include "kernels/cpu/parallel.h"

namespace amp::cpu {
namespace {

size_t Width(const TensorRef& t) { return DTypeSize(t.dtype); }

Status CopyKernel(KernelContext& ctx) {
  if (ctx.out(0).data != ctx.in(0).data)
    std::memcpy(ctx.out(0).data, ctx.in(0).data, ctx.in(0).nbytes());
  return Status::Ok();
}

// Visits every index of `dims` in row-major order with a running offset
// into a tensor with `strides`: f(out_flat, in_offset).
template <typename F>
void Walk(const std::vector<int64_t>& dims, const std::vector<int64_t>& strides, int64_t base,
          F&& f) {
  int64_t total = Product(dims);
  size_t r = dims.size();
  std::vector<int64_t> idx(r, 0);
  int64_t off = base;
  for (int64_t i = 0; i < total; ++i) {
    f(i, off);
    for (int64_t d = static_cast<int64_t>(r) - 1; d >= 0; --d) {
      off += strides[d];
      if (++idx[d] < dims[d]) break;
      off -= strides[d] * dims[d];
      idx[d] = 0;
    }
  }
}

Status TransposeKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  TensorRef& y = ctx.out(0);
  int64_t r = x.rank();
  std::vector<int64_t> perm = ctx.node.GetInts("perm");
  if (perm.empty())
    for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
  std::vector<int64_t> in_strides = Strides(x.dims), s(r);
  for (int64_t i = 0; i < r; ++i) s[i] = in_strides[perm[i]];
  size_t w = Width(x);
  const uint8_t* px = x.as<uint8_t>();
  uint8_t* py = y.as<uint8_t>();
  if (r == 0 || y.numel() == 0) {
    if (y.numel()) std::memcpy(py, px, w);
    return Status::Ok();
  }
  // Row by row of the output's last axis (rows split over the threads): a
  // row is one memcpy when that axis is contiguous in the input (attention's
  // head transposes), else a strided gather of elements.
  int64_t inner = y.dims[r - 1], step = s[r - 1], rows = y.numel() / inner;
  auto gather = [&](auto tag, const uint8_t* from, uint8_t* to) {
    using T = typename decltype(tag)::type;
    const T* f = reinterpret_cast<const T*>(from);
    T* t = reinterpret_cast<T*>(to);
    for (int64_t j = 0; j < inner; ++j) t[j] = f[j * step];
  };
  ParallelFor(rows, std::max<int64_t>(1, 16384 / inner), [&](int64_t first, int64_t last) {
    for (int64_t row = first; row < last; ++row) {
      int64_t off = 0, rest = row;
      for (int64_t d = r - 2; d >= 0; --d) {
        off += (rest % y.dims[d]) * s[d];
        rest /= y.dims[d];
      }
      const uint8_t* from = px + off * w;
      uint8_t* to = py + row * inner * w;
      if (step == 1) {
        std::memcpy(to, from, inner * w);
      } else if (w == 4) {
        gather(TypeTag<uint32_t>{}, from, to);
      } else if (w == 2) {
        gather(TypeTag<uint16_t>{}, from, to);
      } else if (w == 8) {
        gather(TypeTag<uint64_t>{}, from, to);
      } else if (w == 1) {
        gather(TypeTag<uint8_t>{}, from, to);
      } else {
        for (int64_t j = 0; j < inner; ++j) std::memcpy(to + j * w, from + j * step * w, w);
      }
    }
  });
  return Status::Ok();
}

Status ConcatKernel(KernelContext& ctx) {
  TensorRef& y = ctx.out(0);
  int64_t axis = NormalizeAxis(ctx.node.GetInt("axis", 0), y.rank());
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= y.dims[d];
  size_t w = Width(y);
  int64_t out_block = Product(y.dims, axis) * w;
  int64_t at = 0;
  for (size_t k = 0; k < ctx.inputs.size(); ++k) {
    const TensorRef& x = ctx.in(k);
    int64_t block = Product(x.dims, axis) * w;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(y.as<uint8_t>() + o * out_block + at, x.as<uint8_t>() + o * block, block);
    at += block;
  }
  return Status::Ok();
}

Status SplitKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  int64_t axis = NormalizeAxis(ctx.node.GetInt("axis", 0), x.rank());
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dims[d];
  size_t w = Width(x);
  int64_t in_block = Product(x.dims, axis) * w;
  int64_t at = 0;
  for (size_t k = 0; k < ctx.outputs.size(); ++k) {
    if (!ctx.has_output(k)) return ctx.Error("every Split output must be used");
    TensorRef& y = ctx.out(k);
    int64_t block = Product(y.dims, axis) * w;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(y.as<uint8_t>() + o * block, x.as<uint8_t>() + o * in_block + at, block);
    at += block;
  }
  return Status::Ok();
}

Status SliceKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  TensorRef& y = ctx.out(0);
  int64_t r = x.rank();
  std::vector<int64_t> starts = ReadInts(ctx.in(1));
  std::vector<int64_t> axes;
  if (ctx.has_input(3)) {
    axes = ReadInts(ctx.in(3));
  } else {
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  }
  std::vector<int64_t> steps(starts.size(), 1);
  if (ctx.has_input(4)) steps = ReadInts(ctx.in(4));
  std::vector<int64_t> begin(r, 0), step(r, 1);
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t a = NormalizeAxis(axes[i], r);
    int64_t dim = x.dims[a];
    int64_t s = starts[i] < 0 ? starts[i] + dim : starts[i];
    s = steps[i] > 0 ? std::clamp<int64_t>(s, 0, dim) : std::clamp<int64_t>(s, 0, dim - 1);
    begin[a] = s;
    step[a] = steps[i];
  }
  std::vector<int64_t> xs = Strides(x.dims), s(r);
  int64_t base = 0;
  for (int64_t d = 0; d < r; ++d) {
    s[d] = xs[d] * step[d];
    base += begin[d] * xs[d];
  }
  size_t w = Width(x);
  const uint8_t* px = x.as<uint8_t>();
  uint8_t* py = y.as<uint8_t>();
  Walk(y.dims, s, base, [&](int64_t i, int64_t o) { std::memcpy(py + i * w, px + o * w, w); });
  return Status::Ok();
}

Status GatherKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  const TensorRef& idx = ctx.in(1);
  int64_t axis = NormalizeAxis(ctx.node.GetInt("axis", 0), x.rank());
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dims[d];
  int64_t n = x.dims[axis];
  size_t w = Width(x);
  int64_t inner = Product(x.dims, axis + 1) * w;
  int64_t ni = idx.numel();
  uint8_t* py = ctx.out(0).as<uint8_t>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < ni; ++j) {
      int64_t k = ReadInt(idx, j);
      if (k < 0) k += n;
      if (k < 0 || k >= n)
        return ctx.Error("index ", ReadInt(idx, j), " is out of range [", -n, ", ", n, ")");
      std::memcpy(py + (o * ni + j) * inner, x.as<uint8_t>() + (o * n + k) * inner, inner);
    }
  return Status::Ok();
}

// The input offset of element i of `idx_dims` with the axis coordinate
// replaced by index value k.
struct AxisIndexer {
  std::vector<int64_t> dims, data_strides;
  int64_t axis;
  int64_t Offset(int64_t i, int64_t k) const {
    int64_t off = 0;
    for (int64_t d = static_cast<int64_t>(dims.size()) - 1; d >= 0; --d) {
      int64_t c = i % dims[d];
      i /= dims[d];
      off += (d == axis ? k : c) * data_strides[d];
    }
    return off;
  }
};

Status GatherElementsKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  const TensorRef& idx = ctx.in(1);
  int64_t axis = NormalizeAxis(ctx.node.GetInt("axis", 0), x.rank());
  AxisIndexer ix{idx.dims, Strides(x.dims), axis};
  size_t w = Width(x);
  uint8_t* py = ctx.out(0).as<uint8_t>();
  for (int64_t i = 0; i < idx.numel(); ++i) {
    int64_t k = ReadInt(idx, i);
    if (k < 0) k += x.dims[axis];
    if (k < 0 || k >= x.dims[axis]) return ctx.Error("index out of range");
    std::memcpy(py + i * w, x.as<uint8_t>() + ix.Offset(i, k) * w, w);
  }
  return Status::Ok();
}

// out[at] = combine(out[at], update) for ScatterElements/ScatterND.
Status ScatterInto(KernelContext& ctx, TensorRef& out, int64_t at, const TensorRef& upd, int64_t j,
                   const std::string& reduction) {
  bool ok = VisitType(out.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* po = out.as<T>();
    const T* pu = upd.as<T>();
    if (reduction == "none") {
      po[at] = pu[j];
      return;
    }
    if constexpr (!std::is_same_v<T, bool>) {
      auto a = Load(po[at]);
      auto b = Load(pu[j]);
      if (reduction == "add")
        a = a + b;
      else if (reduction == "mul")
        a = a * b;
      else if (reduction == "max" || reduction == "min") {
        // NaN from either side stays NaN (IEEE maximum/minimum).
        using A = decltype(a);
        bool nan = false;
        if constexpr (std::is_floating_point_v<A>) nan = std::isnan(a) || std::isnan(b);
        if (nan)
          a = std::numeric_limits<A>::quiet_NaN();
        else
          a = reduction == "max" ? std::max(a, b) : std::min(a, b);
      }
      po[at] = Store<T>(a);
    }
  });
  if (!ok) return ctx.Error("unsupported element type");
  return Status::Ok();
}

Status ScatterElementsKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  const TensorRef& idx = ctx.in(1);
  const TensorRef& upd = ctx.in(2);
  TensorRef& y = ctx.out(0);
  if (y.data != x.data) std::memcpy(y.data, x.data, x.nbytes());  // (in place: ops/data.cc)
  int64_t axis = NormalizeAxis(ctx.node.GetInt("axis", 0), x.rank());
  std::string reduction = ctx.node.GetString("reduction", "none");
  AxisIndexer ix{idx.dims, Strides(x.dims), axis};
  for (int64_t i = 0; i < idx.numel(); ++i) {
    int64_t k = ReadInt(idx, i);
    if (k < 0) k += x.dims[axis];
    if (k < 0 || k >= x.dims[axis]) return ctx.Error("index out of range");
    AMP_RETURN_IF_ERROR(ScatterInto(ctx, y, ix.Offset(i, k), upd, i, reduction));
  }
  return Status::Ok();
}

// GatherND: for every index tuple (per batch of the first batch_dims dims),
// copies the slice of data it names.
Status GatherNDKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  const TensorRef& idx = ctx.in(1);
  TensorRef& y = ctx.out(0);
  int64_t bd = ctx.node.GetInt("batch_dims", 0);
  int64_t k = idx.dims.back();
  int64_t batches = Product(std::vector<int64_t>(x.dims.begin(), x.dims.begin() + bd), 0);
  int64_t per_batch = Product(std::vector<int64_t>(idx.dims.begin() + bd, idx.dims.end() - 1), 0);
  int64_t slice = Product(x.dims, bd + k);
  int64_t batch_stride = Product(x.dims, bd);
  std::vector<int64_t> xs = Strides(x.dims);
  size_t elem = DTypeSize(x.dtype);
  const uint8_t* src = static_cast<const uint8_t*>(x.data);
  uint8_t* dst = static_cast<uint8_t*>(y.data);
  for (int64_t bt = 0; bt < batches; ++bt)
    for (int64_t u = 0; u < per_batch; ++u) {
      int64_t row = bt * per_batch + u;
      int64_t base = bt * batch_stride;
      for (int64_t d = 0; d < k; ++d) {
        int64_t c = ReadInt(idx, row * k + d);
        int64_t dim = x.dims[bd + d];
        if (c < 0) c += dim;
        if (c < 0 || c >= dim)
          return ctx.Error("index ", ReadInt(idx, row * k + d), " is out of range for dim ", dim);
        base += c * xs[bd + d];
      }
      std::memcpy(dst + row * slice * elem, src + base * elem, slice * elem);
    }
  return Status::Ok();
}

Status ScatterNDKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  const TensorRef& idx = ctx.in(1);
  const TensorRef& upd = ctx.in(2);
  TensorRef& y = ctx.out(0);
  if (y.data != x.data) std::memcpy(y.data, x.data, x.nbytes());  // (in place: ops/data.cc)
  std::string reduction = ctx.node.GetString("reduction", "none");
  int64_t k = idx.dims.back();
  int64_t nupd = idx.numel() / std::max<int64_t>(k, 1);
  int64_t slice = Product(x.dims, k);
  std::vector<int64_t> xs = Strides(x.dims);
  for (int64_t u = 0; u < nupd; ++u) {
    int64_t base = 0;
    for (int64_t d = 0; d < k; ++d) {
      int64_t c = ReadInt(idx, u * k + d);
      if (c < 0) c += x.dims[d];
      if (c < 0 || c >= x.dims[d]) return ctx.Error("index out of range");
      base += c * xs[d];
    }
    for (int64_t e = 0; e < slice; ++e)
      AMP_RETURN_IF_ERROR(ScatterInto(ctx, y, base + e, upd, u * slice + e, reduction));
  }
  return Status::Ok();
}

Status ExpandKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  TensorRef& y = ctx.out(0);
  size_t w = Width(x);
  std::vector<int64_t> s = BroadcastStrides(x.dims, y.dims);
  const uint8_t* px = x.as<uint8_t>();
  uint8_t* py = y.as<uint8_t>();
  Walk(y.dims, s, 0, [&](int64_t i, int64_t o) { std::memcpy(py + i * w, px + o * w, w); });
  return Status::Ok();
}

Status TileKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  TensorRef& y = ctx.out(0);
  size_t w = Width(x);
  std::vector<int64_t> xs = Strides(x.dims), ys = Strides(y.dims);
  for (int64_t i = 0; i < y.numel(); ++i) {
    int64_t rem = i, off = 0;
    for (int64_t d = 0; d < y.rank(); ++d) {
      int64_t c = rem / ys[d];
      rem %= ys[d];
      off += (c % x.dims[d]) * xs[d];
    }
    std::memcpy(y.as<uint8_t>() + i * w, x.as<uint8_t>() + off * w, w);
  }
  return Status::Ok();
}

Status PadKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  TensorRef& y = ctx.out(0);
  int64_t r = x.rank();
  std::vector<int64_t> pads = ctx.has_input(1) ? ReadInts(ctx.in(1)) : ctx.node.GetInts("pads");
  std::vector<int64_t> axes;
  if (ctx.has_input(3)) {
    for (int64_t a : ReadInts(ctx.in(3))) axes.push_back(NormalizeAxis(a, r));
  } else {
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  }
  int64_t na = static_cast<int64_t>(axes.size());
  std::vector<int64_t> begin(r, 0);
  for (int64_t i = 0; i < na; ++i) begin[axes[i]] = pads[i];
  std::string mode = ctx.node.GetString("mode", "constant");
  size_t w = Width(x);
  // The constant, stored as the element type.
  std::vector<uint8_t> fill(w, 0);
  if (ctx.has_input(2) && ctx.in(2).numel() > 0) std::memcpy(fill.data(), ctx.in(2).data, w);
  std::vector<int64_t> xs = Strides(x.dims), ys = Strides(y.dims);
  for (int64_t i = 0; i < y.numel(); ++i) {
    int64_t rem = i, off = 0;
    bool outside = false;
    for (int64_t d = 0; d < r; ++d) {
      int64_t c = rem / ys[d] - begin[d];
      rem %= ys[d];
      int64_t n = x.dims[d];
      if (c < 0 || c >= n) {
        if (mode == "constant" || n == 0) {
          outside = true;
          break;
        }
        if (mode == "edge") {
          c = std::clamp<int64_t>(c, 0, n - 1);
        } else if (mode == "wrap") {
          c = ((c % n) + n) % n;
        } else {  // reflect
          int64_t period = 2 * (n - 1);
          if (period == 0) {
            c = 0;
          } else {
            c = ((c % period) + period) % period;
            if (c >= n) c = period - c;
          }
        }
      }
      off += c * xs[d];
    }
    std::memcpy(y.as<uint8_t>() + i * w, outside ? fill.data() : x.as<uint8_t>() + off * w, w);
  }
  return Status::Ok();
}

Status ShapeKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  int64_t r = x.rank();
  int64_t start = ctx.node.GetInt("start", 0), end = ctx.node.GetInt("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  int64_t* py = ctx.out(0).as<int64_t>();
  for (int64_t d = start; d < end; ++d) py[d - start] = x.dims[d];
  return Status::Ok();
}

Status SizeKernel(KernelContext& ctx) {
  *ctx.out(0).as<int64_t>() = ctx.in(0).numel();
  return Status::Ok();
}

void CopyTensor(const Tensor& t, TensorRef& y) {
  AMP_CHECK(t.nbytes() == y.nbytes());
  if (t.nbytes()) std::memcpy(y.data, t.data(), t.nbytes());
}

Status ConstantKernel(KernelContext& ctx) {
  TensorRef& y = ctx.out(0);
  const KernelAttrs& n = ctx.node;
  if (const Attribute* a = n.FindAttr("value")) {
    CopyTensor(a->t, y);
  } else if (const Attribute* f = n.FindAttr("value_float")) {
    *y.as<float>() = f->f;
  } else if (const Attribute* i = n.FindAttr("value_int")) {
    *y.as<int64_t>() = i->i;
  } else if (const Attribute* fs = n.FindAttr("value_floats")) {
    std::memcpy(y.data, fs->floats.data(), fs->floats.size() * sizeof(float));
  } else if (const Attribute* is = n.FindAttr("value_ints")) {
    std::memcpy(y.data, is->ints.data(), is->ints.size() * sizeof(int64_t));
  } else {
    return ctx.Error("Constant without a value the runtime understands");
  }
  return Status::Ok();
}

Status ConstantOfShapeKernel(KernelContext& ctx) {
  TensorRef& y = ctx.out(0);
  size_t w = Width(y);
  std::vector<uint8_t> v(w, 0);
  if (const Attribute* a = ctx.node.FindAttr("value"); a && a->t.nbytes() == w)
    std::memcpy(v.data(), a->t.data(), w);
  for (int64_t i = 0; i < y.numel(); ++i) std::memcpy(y.as<uint8_t>() + i * w, v.data(), w);
  return Status::Ok();
}

Status RangeKernel(KernelContext& ctx) {
  TensorRef& y = ctx.out(0);
  bool ok = VisitType(y.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (!std::is_same_v<T, bool>) {
      auto start = Load(ctx.in(0).as<T>()[0]);
      auto delta = Load(ctx.in(2).as<T>()[0]);
      T* py = y.as<T>();
      for (int64_t i = 0; i < y.numel(); ++i)
        py[i] = Store<T>(start + static_cast<Acc<T>>(i) * delta);
    }
  });
  if (!ok) return ctx.Error("unsupported element type");
  return Status::Ok();
}

Status OneHotKernel(KernelContext& ctx) {
  const TensorRef& idx = ctx.in(0);
  TensorRef& y = ctx.out(0);
  int64_t axis = NormalizeAxis(ctx.node.GetInt("axis", -1), y.rank());
  int64_t depth = static_cast<int64_t>(ReadDouble(ctx.in(1), 0));
  const TensorRef& values = ctx.in(2);
  size_t w = Width(y);
  const uint8_t* off = values.as<uint8_t>();
  const uint8_t* on = off + w;
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= y.dims[d];
  int64_t inner = Product(y.dims, axis + 1);
  uint8_t* py = y.as<uint8_t>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < depth; ++k)
      for (int64_t i = 0; i < inner; ++i) {
        // A NaN, infinite or huge (float) index is outside [-depth, depth):
        // all off, as the spec says, and no undefined float-to-int cast.
        double d = ReadDouble(idx, o * inner + i);
        int64_t v = std::abs(d) < 0x1p62 ? static_cast<int64_t>(d) : depth;
        if (v < 0) v += depth;
        std::memcpy(py + ((o * depth + k) * inner + i) * w, v == k ? on : off, w);
      }
  return Status::Ok();
}

Status TriluKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  TensorRef& y = ctx.out(0);
  bool upper = ctx.node.GetInt("upper", 1) != 0;
  int64_t k = ctx.has_input(1) ? ReadInt(ctx.in(1), 0) : 0;
  int64_t rows = x.dims[x.rank() - 2], cols = x.dims.back();
  size_t w = Width(x);
  std::memcpy(y.data, x.data, x.nbytes());
  int64_t mats = x.numel() / std::max<int64_t>(rows * cols, 1);
  for (int64_t m = 0; m < mats; ++m)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        bool keep = upper ? j - i >= k : j - i <= k;
        if (!keep) std::memset(y.as<uint8_t>() + ((m * rows + i) * cols + j) * w, 0, w);
      }
  return Status::Ok();
}

// Counter-based random numbers: the same seed, step and element give the
// same draw on every run and after a resume.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

Status DropoutKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  TensorRef& y = ctx.out(0);
  double ratio = ctx.has_input(1) ? ReadDouble(ctx.in(1), 0) : 0.5;
  bool training = ctx.has_input(2) && ReadInt(ctx.in(2), 0) != 0;
  bool* mask = ctx.has_output(1) ? ctx.out(1).as<bool>() : nullptr;
  if (!training || ratio == 0) {
    std::memcpy(y.data, x.data, x.nbytes());
    if (mask) std::fill(mask, mask + x.numel(), true);
    return Status::Ok();
  }
  if (ratio < 0 || ratio >= 1) return ctx.Error("ratio ", ratio, " is outside [0, 1)");
  uint64_t seed = static_cast<uint64_t>(ctx.node.GetInt("seed", 0));
  double scale = 1.0 / (1.0 - ratio);
  bool ok = VisitFloat(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.as<T>();
    T* py = y.as<T>();
    uint64_t stream = Mix(seed ^ Mix(ctx.step));
    for (int64_t i = 0; i < x.numel(); ++i) {
      double u = static_cast<double>(Mix(stream + static_cast<uint64_t>(i)) >> 11) * 0x1.0p-53;
      bool keep = u >= ratio;
      py[i] = Store<T>(keep ? Load(px[i]) * scale : 0.0);
      if (mask) mask[i] = keep;
    }
  });
  if (!ok) return ctx.Error("expects a float tensor");
  return Status::Ok();
}

}  // namespace

void RegisterDataKernels(KernelTable& t) {
  for (const char* op : {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}) t[op] = CopyKernel;
  t["Transpose"] = TransposeKernel;
  t["Concat"] = ConcatKernel;
  t["Split"] = SplitKernel;
  t["Slice"] = SliceKernel;
  t["Gather"] = GatherKernel;
  t["GatherElements"] = GatherElementsKernel;
  t["ScatterElements"] = ScatterElementsKernel;
  t["ScatterND"] = ScatterNDKernel;
  t["GatherND"] = GatherNDKernel;
  t["Expand"] = ExpandKernel;
  t["Tile"] = TileKernel;
  t["Pad"] = PadKernel;
  t["Shape"] = ShapeKernel;
  t["Size"] = SizeKernel;
  t["Constant"] = ConstantKernel;
  t["ConstantOfShape"] = ConstantOfShapeKernel;
  t["Range"] = RangeKernel;
  t["OneHot"] = OneHotKernel;
  t["Trilu"] = TriluKernel;
  t["Dropout"] = DropoutKernel;
}

}  // namespace amp::cpu
