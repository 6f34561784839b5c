// Pooling kernels, any number of spatial dims: MaxPool (with Indices) and
// its gradient (ai.amp MaxPoolGrad), AveragePool, LpPool, GlobalAveragePool
// and GlobalMaxPool.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "kernels/cpu/families.h"
#include "kernels/cpu/parallel.h"

namespace amp::cpu {
namespace {

struct Window {
  std::vector<int64_t> in, out, kernel, strides, dilations, pad_begin, pad_end;
  std::vector<int64_t> table;  // [kp][output position] -> input position or -1
  int64_t nin, nout, nk;
};

Window MakeWindow(const KernelAttrs& n, const TensorRef& x, const TensorRef& y) {
  Window w;
  size_t r = x.dims.size() - 2;
  w.in.assign(x.dims.begin() + 2, x.dims.end());
  w.out.assign(y.dims.begin() + 2, y.dims.end());
  w.kernel = n.GetInts("kernel_shape");
  w.strides = AttrOr(n, "strides", r, 1);
  w.dilations = AttrOr(n, "dilations", r, 1);
  w.pad_begin = PadBegin(n, w.in, w.out, w.kernel, w.strides, w.dilations);
  w.pad_end.assign(r, 0);
  std::vector<int64_t> pads = n.GetInts("pads");
  std::string auto_pad = n.GetString("auto_pad", "NOTSET");
  for (size_t d = 0; d < r; ++d) {
    if (auto_pad == "NOTSET" && pads.size() == 2 * r) {
      w.pad_end[d] = pads[r + d];
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      int64_t total = std::max<int64_t>(
          0, (w.out[d] - 1) * w.strides[d] + (w.kernel[d] - 1) * w.dilations[d] + 1 - w.in[d]);
      w.pad_end[d] = total - w.pad_begin[d];
    }
  }
  w.table = IndexTable(w.out, w.in, w.kernel, w.strides, w.pad_begin, w.dilations);
  w.nin = Product(w.in);
  w.nout = Product(w.out);
  w.nk = Product(w.kernel);
  return w;
}

// The position in its plane of the largest input in output position o's
// window (-1 for a window outside the input): the first maximum in the
// window's order, or the last NaN when there is one (PyTorch's rule). The
// value goes to `best`.
template <typename T, typename A = Acc<T>>
int64_t WindowArgMax(const Window& w, const T* plane, int64_t o, A& best) {
  best = std::numeric_limits<A>::lowest();
  int64_t arg = -1;
  for (int64_t k = 0; k < w.nk; ++k) {
    int64_t i = w.table[k * w.nout + o];
    if (i < 0) continue;
    A v = Load(plane[i]);
    bool nan = false;
    if constexpr (std::is_floating_point_v<A>) nan = std::isnan(v);
    if (arg < 0 || v > best || nan) {
      best = v;
      arg = i;
    }
  }
  return arg;
}

Status MaxPoolKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  TensorRef& y = ctx.out(0);
  Window w = MakeWindow(ctx.node, x, y);
  int64_t planes = x.dims[0] * x.dims[1];
  bool column_major = ctx.node.GetInt("storage_order", 0) != 0;
  int64_t* indices = ctx.has_output(1) ? ctx.out(1).as<int64_t>() : nullptr;
  bool ok = VisitType(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = Acc<T>;
    if constexpr (!std::is_same_v<A, bool>) {
      const T* px = x.as<T>();
      T* py = y.as<T>();
      ParallelFor(planes, 1, [&](int64_t first, int64_t last) {
        for (int64_t p = first; p < last; ++p) {
          for (int64_t o = 0; o < w.nout; ++o) {
            A best;
            int64_t arg = WindowArgMax<T>(w, px + p * w.nin, o, best);
            py[p * w.nout + o] = Store<T>(best);
            if (indices) {
              int64_t flat = arg;
              if (column_major && w.in.size() == 2) {
                flat = (arg % w.in[1]) * w.in[0] + arg / w.in[1];
              }
              indices[p * w.nout + o] = p * w.nin + flat;
            }
          }
        }
      });
    }
  });
  if (!ok || x.dtype == DType::kBool) return ctx.Error("unsupported element type");
  return Status::Ok();
}

// ai.amp MaxPoolGrad (ops/pool.cc): each output gradient added, in its
// type, to the input its window's maximum in x came from, windows in order,
// then stored in dx's type - what the unfused ScatterElements (add) over
// MaxPool's indices and the Cast after it compute, bit for bit, without the
// indices.
Status MaxPoolGradKernel(KernelContext& ctx) {
  const TensorRef& dy = ctx.in(0);
  const TensorRef& x = ctx.in(1);
  TensorRef& dx = ctx.out(0);
  if (dy.rank() != x.rank() || x.rank() < 3 || dy.dims[0] != x.dims[0] || dy.dims[1] != x.dims[1])
    return ctx.Error("dy and x must have the same rank, batch and channels");
  Window w = MakeWindow(ctx.node, x, dy);
  int64_t planes = x.dims[0] * x.dims[1];
  // The sums of each plane in dy's type, then stored in dx's (out_type).
  auto run = [&]<typename X, typename T, typename O>(const X* px, const T* pdy, O* pdx) {
    using A = Acc<T>;
    ParallelFor(planes, 1, [&](int64_t first, int64_t last) {
      std::vector<T> sums(static_cast<size_t>(w.nin));
      for (int64_t p = first; p < last; ++p) {
        std::fill(sums.begin(), sums.end(), Store<T>(A(0)));
        for (int64_t o = 0; o < w.nout; ++o) {
          Acc<X> best;
          int64_t arg = WindowArgMax<X>(w, px + p * w.nin, o, best);
          if (arg >= 0) sums[arg] = Store<T>(Load(sums[arg]) + Load(pdy[p * w.nout + o]));
        }
        O* plane = pdx + p * w.nin;
        for (int64_t i = 0; i < w.nin; ++i) plane[i] = Store<O>(Load(sums[i]));
      }
    });
  };
  bool inner = false, innermost = false;
  bool ok = VisitFloat(x.dtype, [&](auto xtag) {
    using X = typename decltype(xtag)::type;
    inner = VisitFloat(dy.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      innermost = VisitFloat(dx.dtype, [&](auto otag) {
        using O = typename decltype(otag)::type;
        run(x.as<X>(), dy.as<T>(), dx.as<O>());
      });
    });
  });
  ok = ok && inner && innermost;
  if (!ok) return ctx.Error("expects float tensors");
  return Status::Ok();
}

// AveragePool and LpPool: a sum over the window (of |x|^p for LpPool).
Status WindowSumKernel(KernelContext& ctx, bool lp) {
  const TensorRef& x = ctx.in(0);
  TensorRef& y = ctx.out(0);
  Window w = MakeWindow(ctx.node, x, y);
  int64_t planes = x.dims[0] * x.dims[1];
  bool include_pad = ctx.node.GetInt("count_include_pad", 0) != 0;
  double p_norm = static_cast<double>(ctx.node.GetInt("p", 2));
  size_t r = w.in.size();
  // The divisor per output position: the window's positions inside the
  // input, or inside the padded input with count_include_pad.
  std::vector<int64_t> count(w.nout, 0);
  {
    std::vector<int64_t> oidx(r, 0);
    for (int64_t o = 0; o < w.nout; ++o) {
      int64_t c = 1;
      for (size_t d = 0; d < r; ++d) {
        int64_t lo = include_pad ? -w.pad_begin[d] : 0;
        int64_t hi = include_pad ? w.in[d] + w.pad_end[d] : w.in[d];
        int64_t n = 0;
        for (int64_t k = 0; k < w.kernel[d]; ++k) {
          int64_t pos = oidx[d] * w.strides[d] - w.pad_begin[d] + k * w.dilations[d];
          if (pos >= lo && pos < hi) ++n;
        }
        c *= n;
      }
      count[o] = c;
      for (int64_t d = static_cast<int64_t>(r) - 1; d >= 0; --d) {
        if (++oidx[d] < w.out[d]) break;
        oidx[d] = 0;
      }
    }
  }
  bool ok = VisitFloat(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.as<T>();
    T* py = y.as<T>();
    for (int64_t p = 0; p < planes; ++p) {
      for (int64_t o = 0; o < w.nout; ++o) {
        double s = 0;
        for (int64_t k = 0; k < w.nk; ++k) {
          int64_t i = w.table[k * w.nout + o];
          if (i < 0) continue;
          double v = Load(px[p * w.nin + i]);
          s += lp ? std::pow(std::abs(v), p_norm) : v;
        }
        double r_ = lp ? std::pow(s, 1.0 / p_norm) : (count[o] ? s / count[o] : 0.0);
        py[p * w.nout + o] = Store<T>(r_);
      }
    }
  });
  if (!ok) return ctx.Error("expects a float tensor");
  return Status::Ok();
}

Status AveragePoolKernel(KernelContext& ctx) { return WindowSumKernel(ctx, false); }
Status LpPoolKernel(KernelContext& ctx) { return WindowSumKernel(ctx, true); }

Status GlobalPoolKernel(KernelContext& ctx, bool max) {
  const TensorRef& x = ctx.in(0);
  int64_t planes = x.dims[0] * x.dims[1];
  int64_t n = Product(x.dims, 2);
  bool ok = VisitFloat(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.as<T>();
    T* py = ctx.out(0).as<T>();
    for (int64_t p = 0; p < planes; ++p) {
      double acc = max ? -std::numeric_limits<double>::infinity() : 0.0;
      for (int64_t i = 0; i < n; ++i) {
        double v = Load(px[p * n + i]);
        if (!max)
          acc = acc + v;
        else if (!std::isnan(acc))
          acc = std::isnan(v) ? v : std::max(acc, v);
      }
      py[p] = Store<T>(max ? acc : acc / static_cast<double>(n));
    }
  });
  if (!ok) return ctx.Error("expects a float tensor");
  return Status::Ok();
}

Status GlobalAveragePoolKernel(KernelContext& ctx) { return GlobalPoolKernel(ctx, false); }
Status GlobalMaxPoolKernel(KernelContext& ctx) { return GlobalPoolKernel(ctx, true); }

}  // namespace

void RegisterPoolKernels(KernelTable& t) {
  t["MaxPool"] = MaxPoolKernel;
  t["ai.amp:MaxPoolGrad"] = MaxPoolGradKernel;
  t["AveragePool"] = AveragePoolKernel;
  t["LpPool"] = LpPoolKernel;
  t["GlobalAveragePool"] = GlobalAveragePoolKernel;
  t["GlobalMaxPool"] = GlobalMaxPoolKernel;
}

}  // namespace amp::cpu
