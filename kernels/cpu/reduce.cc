// Reductions (ReduceSum, ReduceMean, ... accumulating in double), ArgMax and
// ArgMin, CumSum, and the Softmax family along one axis.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "kernels/cpu/families.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/softmax_row.h"

namespace amp::cpu {
namespace {

enum class Red { kSum, kMean, kMax, kMin, kProd, kLogSum, kLogSumExp, kSumSquare, kL1, kL2 };

// The reduced axes of a Reduce* node, or nullopt for "no reduction"
// (noop_with_empty_axes with no axes).
std::optional<std::vector<bool>> ReducedAxes(const KernelContext& ctx, int64_t rank) {
  std::vector<int64_t> axes;
  if (ctx.has_input(1))
    axes = ReadInts(ctx.in(1));
  else
    axes = ctx.node.GetInts("axes");
  std::vector<bool> mask(rank, axes.empty());
  if (axes.empty() && ctx.node.GetInt("noop_with_empty_axes", 0) != 0) return std::nullopt;
  for (int64_t a : axes) mask[NormalizeAxis(a, rank)] = true;
  return mask;
}

Status ReduceKernel(KernelContext& ctx, Red op) {
  const TensorRef& x = ctx.in(0);
  TensorRef& y = ctx.out(0);
  auto mask = ReducedAxes(ctx, x.rank());
  int64_t rank = x.rank();
  // Offset of each input element in the output.
  std::vector<int64_t> out_stride(rank, 0);
  {
    int64_t s = 1;
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (mask && (*mask)[d]) continue;
      out_stride[d] = s;
      s *= x.dims[d];
    }
  }
  int64_t nout = y.numel();
  int64_t count = nout ? x.numel() / std::max<int64_t>(nout, 1) : 0;
  bool ok = VisitType(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (!std::is_same_v<T, bool>) {
      const T* px = x.as<T>();
      double init = 0;
      if (op == Red::kMax) init = -std::numeric_limits<double>::infinity();
      if (op == Red::kMin) init = std::numeric_limits<double>::infinity();
      if (op == Red::kProd) init = 1;
      std::vector<double> acc(nout, init);
      std::vector<double> peak;
      if (op == Red::kLogSumExp) {
        // Subtract each output's maximum first, for stability.
        peak.assign(nout, -std::numeric_limits<double>::infinity());
      }
      std::vector<int64_t> idx(rank, 0);
      auto walk = [&](auto&& f) {
        std::fill(idx.begin(), idx.end(), 0);
        int64_t o = 0;
        for (int64_t i = 0; i < x.numel(); ++i) {
          f(i, o);
          for (int64_t d = rank - 1; d >= 0; --d) {
            o += out_stride[d];
            if (++idx[d] < x.dims[d]) break;
            o -= out_stride[d] * x.dims[d];
            idx[d] = 0;
          }
        }
      };
      if (op == Red::kLogSumExp) {
        walk([&](int64_t i, int64_t o) { peak[o] = std::max(peak[o], double(Load(px[i]))); });
        // An infinite maximum is no shift: inf - inf would make NaN of an
        // inf (or all -inf) reduction.
        for (double& p : peak)
          if (std::isinf(p)) p = 0;
      }
      walk([&](int64_t i, int64_t o) {
        double v = static_cast<double>(Load(px[i]));
        switch (op) {
          case Red::kSum:
          case Red::kMean:
          case Red::kLogSum:
            acc[o] += v;
            break;
          case Red::kMax:
            acc[o] = std::isnan(v) ? v : std::max(acc[o], v);
            break;
          case Red::kMin:
            acc[o] = std::isnan(v) ? v : std::min(acc[o], v);
            break;
          case Red::kProd:
            acc[o] *= v;
            break;
          case Red::kLogSumExp:
            acc[o] += std::exp(v - peak[o]);
            break;
          case Red::kSumSquare:
          case Red::kL2:
            acc[o] += v * v;
            break;
          case Red::kL1:
            acc[o] += std::abs(v);
            break;
        }
      });
      T* py = y.as<T>();
      for (int64_t o = 0; o < nout; ++o) {
        double v = acc[o];
        switch (op) {
          case Red::kMean:
            v = count ? v / count : std::numeric_limits<double>::quiet_NaN();
            break;
          case Red::kLogSum:
            v = std::log(v);
            break;
          case Red::kLogSumExp:
            v = std::log(v) + peak[o];
            break;
          case Red::kL2:
            v = std::sqrt(v);
            break;
          default:
            break;
        }
        if constexpr (std::is_integral_v<T>) {
          if (std::isinf(v))
            v = v > 0 ? static_cast<double>(std::numeric_limits<T>::max())
                      : static_cast<double>(std::numeric_limits<T>::lowest());
        }
        py[o] = Store<T>(static_cast<Acc<T>>(v));
      }
    }
  });
  if (!ok || x.dtype == DType::kBool) return ctx.Error("unsupported element type");
  return Status::Ok();
}

#define AMP_REDUCE(Name, Op) \
  Status Name(KernelContext& ctx) { return ReduceKernel(ctx, Red::Op); }
AMP_REDUCE(ReduceSumKernel, kSum)
AMP_REDUCE(ReduceMeanKernel, kMean)
AMP_REDUCE(ReduceMaxKernel, kMax)
AMP_REDUCE(ReduceMinKernel, kMin)
AMP_REDUCE(ReduceProdKernel, kProd)
AMP_REDUCE(ReduceLogSumKernel, kLogSum)
AMP_REDUCE(ReduceLogSumExpKernel, kLogSumExp)
AMP_REDUCE(ReduceSumSquareKernel, kSumSquare)
AMP_REDUCE(ReduceL1Kernel, kL1)
AMP_REDUCE(ReduceL2Kernel, kL2)
#undef AMP_REDUCE

// [outer, n, inner] around one axis.
struct AxisSplit {
  int64_t outer = 1, n = 1, inner = 1;
};
AxisSplit SplitAt(const std::vector<int64_t>& dims, int64_t axis) {
  AxisSplit s;
  for (int64_t d = 0; d < static_cast<int64_t>(dims.size()); ++d) {
    if (d < axis)
      s.outer *= dims[d];
    else if (d == axis)
      s.n = dims[d];
    else
      s.inner *= dims[d];
  }
  return s;
}

Status ArgKernel(KernelContext& ctx, bool max) {
  const TensorRef& x = ctx.in(0);
  int64_t axis = NormalizeAxis(ctx.node.GetInt("axis", 0), x.rank());
  bool last = ctx.node.GetInt("select_last_index", 0) != 0;
  AxisSplit s = SplitAt(x.dims, axis);
  int64_t* py = ctx.out(0).as<int64_t>();
  bool ok = VisitType(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.as<T>();
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t i = 0; i < s.inner; ++i) {
        int64_t best = 0;
        auto bv = Load(px[o * s.n * s.inner + i]);
        for (int64_t k = 1; k < s.n; ++k) {
          auto v = Load(px[(o * s.n + k) * s.inner + i]);
          bool better = max ? (last ? v >= bv : v > bv) : (last ? v <= bv : v < bv);
          if (better) {
            bv = v;
            best = k;
          }
        }
        py[o * s.inner + i] = best;
      }
  });
  if (!ok) return ctx.Error("unsupported element type");
  return Status::Ok();
}
Status ArgMaxKernel(KernelContext& ctx) { return ArgKernel(ctx, true); }
Status ArgMinKernel(KernelContext& ctx) { return ArgKernel(ctx, false); }

// TopK along one axis: values and int64 indices, largest (or smallest)
// first; ties keep the lower index first, as the spec asks.
Status TopKKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  int64_t axis = NormalizeAxis(ctx.node.GetInt("axis", -1), x.rank());
  int64_t k = ReadInt(ctx.in(1), 0);
  bool largest = ctx.node.GetInt("largest", 1) != 0;
  AxisSplit s = SplitAt(x.dims, axis);
  if (k < 0 || k > s.n) return ctx.Error("k=", k, " is outside [0, ", s.n, "]");
  int64_t* pi = ctx.out(1).as<int64_t>();
  bool ok = VisitType(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.as<T>();
    T* pv = ctx.out(0).as<T>();
    std::vector<int64_t> order(s.n);
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t i = 0; i < s.inner; ++i) {
        auto at = [&](int64_t j) { return Load(px[(o * s.n + j) * s.inner + i]); };
        for (int64_t j = 0; j < s.n; ++j) order[j] = j;
        // NaN sorts above everything (first when largest, last otherwise),
        // as onnxruntime and PyTorch do; this keeps the order strict weak.
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
          auto va = at(a), vb = at(b);
          if constexpr (kIsFloat<T>) {
            if (std::isnan(va) || std::isnan(vb))
              return largest ? !std::isnan(vb) : !std::isnan(va);
          }
          return largest ? va > vb : va < vb;
        });
        for (int64_t j = 0; j < k; ++j) {
          pv[(o * k + j) * s.inner + i] = px[(o * s.n + order[j]) * s.inner + i];
          pi[(o * k + j) * s.inner + i] = order[j];
        }
      }
  });
  if (!ok) return ctx.Error("unsupported element type");
  return Status::Ok();
}

enum class SoftmaxKind { kSoftmax, kLogSoftmax, kHardmax };

Status SoftmaxFamily(KernelContext& ctx, SoftmaxKind kind) {
  const TensorRef& x = ctx.in(0);
  int64_t axis = NormalizeAxis(ctx.node.GetInt("axis", -1), x.rank());
  AxisSplit s = SplitAt(x.dims, axis);
  std::vector<float> fx = ToFloat(x);
  // Rows are independent: the threads split them.
  ParallelFor(s.outer * s.inner, std::max<int64_t>(1, 4096 / std::max<int64_t>(s.n, 1)),
              [&](int64_t first, int64_t last) {
                std::vector<double> row(s.n);  // exp(x - peak), computed once per element
                for (int64_t r = first; r < last; ++r) {
                  int64_t o = r / s.inner, i = r % s.inner;
                  auto at = [&](int64_t k) -> float& { return fx[(o * s.n + k) * s.inner + i]; };
                  if (kind == SoftmaxKind::kHardmax) {
                    // The one-hot of ArgMax: the first maximum, and NaN only counts
                    // where it comes first (what ArgMax and onnxruntime's ArgMax do).
                    int64_t arg = 0;
                    for (int64_t k = 1; k < s.n; ++k)
                      if (at(k) > at(arg)) arg = k;
                    for (int64_t k = 0; k < s.n; ++k) at(k) = k == arg ? 1.f : 0.f;
                    continue;
                  }
                  SoftmaxRow(at, s.n, row.data(), kind == SoftmaxKind::kLogSoftmax);
                }
              });
  FromFloat(fx, ctx.out(0));
  return Status::Ok();
}
Status SoftmaxKernel(KernelContext& ctx) { return SoftmaxFamily(ctx, SoftmaxKind::kSoftmax); }
Status LogSoftmaxKernel(KernelContext& ctx) { return SoftmaxFamily(ctx, SoftmaxKind::kLogSoftmax); }
Status HardmaxKernel(KernelContext& ctx) { return SoftmaxFamily(ctx, SoftmaxKind::kHardmax); }

Status CumSumKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  int64_t axis = NormalizeAxis(ReadInt(ctx.in(1), 0), x.rank());
  bool exclusive = ctx.node.GetInt("exclusive", 0) != 0;
  bool reverse = ctx.node.GetInt("reverse", 0) != 0;
  AxisSplit s = SplitAt(x.dims, axis);
  bool ok = VisitType(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (!std::is_same_v<T, bool>) {
      const T* px = x.as<T>();
      T* py = ctx.out(0).as<T>();
      for (int64_t o = 0; o < s.outer; ++o)
        for (int64_t i = 0; i < s.inner; ++i) {
          Acc<T> acc{};
          for (int64_t j = 0; j < s.n; ++j) {
            int64_t k = reverse ? s.n - 1 - j : j;
            int64_t at = (o * s.n + k) * s.inner + i;
            Acc<T> v = Load(px[at]);
            if (exclusive) {
              py[at] = Store<T>(acc);
              acc += v;
            } else {
              acc += v;
              py[at] = Store<T>(acc);
            }
          }
        }
    }
  });
  if (!ok || x.dtype == DType::kBool) return ctx.Error("unsupported element type");
  return Status::Ok();
}

}  // namespace

void RegisterReduceKernels(KernelTable& t) {
  t["ReduceSum"] = ReduceSumKernel;
  t["ReduceMean"] = ReduceMeanKernel;
  t["ReduceMax"] = ReduceMaxKernel;
  t["ReduceMin"] = ReduceMinKernel;
  t["ReduceProd"] = ReduceProdKernel;
  t["ReduceLogSum"] = ReduceLogSumKernel;
  t["ReduceLogSumExp"] = ReduceLogSumExpKernel;
  t["ReduceSumSquare"] = ReduceSumSquareKernel;
  t["ReduceL1"] = ReduceL1Kernel;
  t["ReduceL2"] = ReduceL2Kernel;
  t["ArgMax"] = ArgMaxKernel;
  t["ArgMin"] = ArgMinKernel;
  t["Softmax"] = SoftmaxKernel;
  t["LogSoftmax"] = LogSoftmaxKernel;
  t["Hardmax"] = HardmaxKernel;
  t["CumSum"] = CumSumKernel;
  t["TopK"] = TopKKernel;
}

}  // namespace amp::cpu
