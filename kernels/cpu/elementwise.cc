// Elementwise kernels: unary math, binary arithmetic and comparisons with
// numpy broadcasting, Where, Clip, the variadic Sum/Max/Min/Mean, and Cast.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "kernels/cpu/families.h"
#include "kernels/cpu/scalar_math.h"

namespace amp::cpu {
namespace {

// Calls f(i, offsets) for every output element i, with each operand's
// element offset under broadcasting.
template <size_t N, typename F>
void ForEachBroadcast(const std::vector<int64_t>& out_dims,
                      const std::array<std::vector<int64_t>, N>& strides, F&& f) {
  int64_t total = 1;
  for (int64_t d : out_dims) total *= d;
  if (total == 0) return;
  size_t r = out_dims.size();
  if (r == 0) {
    std::array<int64_t, N> off{};
    f(int64_t{0}, off);
    return;
  }
  std::vector<int64_t> idx(r, 0);
  std::array<int64_t, N> off{};
  int64_t inner = out_dims[r - 1];
  for (int64_t i = 0; i < total; i += inner) {
    std::array<int64_t, N> o = off;
    for (int64_t j = 0; j < inner; ++j) {
      f(i + j, o);
      for (size_t k = 0; k < N; ++k) o[k] += strides[k][r - 1];
    }
    // Advance the outer index.
    for (int64_t d = static_cast<int64_t>(r) - 2; d >= 0; --d) {
      if (++idx[d] < out_dims[d]) {
        for (size_t k = 0; k < N; ++k) off[k] += strides[k][d];
        break;
      }
      for (size_t k = 0; k < N; ++k) off[k] -= strides[k][d] * (out_dims[d] - 1);
      idx[d] = 0;
    }
  }
}

template <typename TIn, typename TOut, typename F>
void Binary(const TensorRef& a, const TensorRef& b, TensorRef& out, F f) {
  const TIn* pa = a.as<TIn>();
  const TIn* pb = b.as<TIn>();
  TOut* po = out.as<TOut>();
  int64_t n = out.numel();
  if (a.dims == out.dims && b.dims == out.dims) {
    for (int64_t i = 0; i < n; ++i) po[i] = Store<TOut>(f(Load(pa[i]), Load(pb[i])));
  } else if (a.dims == out.dims && b.numel() == 1) {
    auto vb = Load(pb[0]);
    for (int64_t i = 0; i < n; ++i) po[i] = Store<TOut>(f(Load(pa[i]), vb));
  } else {
    std::array<std::vector<int64_t>, 2> s{BroadcastStrides(a.dims, out.dims),
                                          BroadcastStrides(b.dims, out.dims)};
    ForEachBroadcast<2>(out.dims, s, [&](int64_t i, const std::array<int64_t, 2>& o) {
      po[i] = Store<TOut>(f(Load(pa[o[0]]), Load(pb[o[1]])));
    });
  }
}

template <typename T>
Acc<T> IntPow(Acc<T> base, double e) {
  return static_cast<Acc<T>>(std::pow(static_cast<double>(base), e));
}

template <typename T>
auto BinaryFn(BinOp op) {
  return [op](Acc<T> x, Acc<T> y) { return BinaryMath(op, x, y); };
}

Status ArithmeticKernel(KernelContext& ctx, BinOp op) {
  bool ok = VisitType(ctx.in(0).dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Binary<T, T>(ctx.in(0), ctx.in(1), ctx.out(0), BinaryFn<T>(op));
  });
  if (!ok) return ctx.Error("unsupported element type");
  return Status::Ok();
}

Status CompareKernel(KernelContext& ctx, BinOp op) {
  bool ok = VisitType(ctx.in(0).dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = Acc<T>;
    Binary<T, bool>(ctx.in(0), ctx.in(1), ctx.out(0),
                    [op](A x, A y) -> bool { return CompareMath(op, x, y); });
  });
  if (!ok) return ctx.Error("unsupported element type");
  return Status::Ok();
}

#define AMP_BINARY(Name, Op) \
  Status Name(KernelContext& ctx) { return ArithmeticKernel(ctx, BinOp::Op); }
AMP_BINARY(AddKernel, kAdd)
AMP_BINARY(SubKernel, kSub)
AMP_BINARY(MulKernel, kMul)
AMP_BINARY(DivKernel, kDiv)
AMP_BINARY(PReluKernel, kPRelu)
AMP_BINARY(AndKernel, kAnd)
AMP_BINARY(OrKernel, kOr)
AMP_BINARY(XorKernel, kXor)
#undef AMP_BINARY

Status ModKernel(KernelContext& ctx) {
  return ArithmeticKernel(ctx, ctx.node.GetInt("fmod", 0) ? BinOp::kFMod : BinOp::kMod);
}

#define AMP_COMPARE(Name, Op) \
  Status Name(KernelContext& ctx) { return CompareKernel(ctx, BinOp::Op); }
AMP_COMPARE(EqualKernel, kEqual)
AMP_COMPARE(GreaterKernel, kGreater)
AMP_COMPARE(GreaterOrEqualKernel, kGreaterEq)
AMP_COMPARE(LessKernel, kLess)
AMP_COMPARE(LessOrEqualKernel, kLessEq)
#undef AMP_COMPARE

// Pow: the exponent may have another type than the base.
Status PowKernel(KernelContext& ctx) {
  const TensorRef& a = ctx.in(0);
  const TensorRef& b = ctx.in(1);
  TensorRef& out = ctx.out(0);
  bool ok = VisitType(a.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = Acc<T>;
    const T* pa = a.as<T>();
    T* po = out.as<T>();
    auto pow = [](A x, double e) -> A {
      if constexpr (std::is_same_v<A, float>) {
        return PowF(x, e);
      } else if constexpr (std::is_same_v<A, bool>) {
        return e == 0 ? true : x;
      } else {
        // Store saturates (NaN to 0) where a cast from NaN or inf would be undefined.
        return Store<A>(std::pow(static_cast<double>(x), e));
      }
    };
    if (b.numel() == 1 && a.dims == out.dims) {
      double e = ReadDouble(b, 0);
      for (int64_t i = 0; i < out.numel(); ++i) po[i] = Store<T>(pow(Load(pa[i]), e));
      return;
    }
    std::array<std::vector<int64_t>, 2> s{BroadcastStrides(a.dims, out.dims),
                                          BroadcastStrides(b.dims, out.dims)};
    ForEachBroadcast<2>(out.dims, s, [&](int64_t i, const std::array<int64_t, 2>& o) {
      po[i] = Store<T>(pow(Load(pa[o[0]]), ReadDouble(b, o[1])));
    });
  });
  if (!ok) return ctx.Error("unsupported element type");
  return Status::Ok();
}

Status WhereKernel(KernelContext& ctx) {
  const TensorRef& c = ctx.in(0);
  const TensorRef& x = ctx.in(1);
  const TensorRef& y = ctx.in(2);
  TensorRef& out = ctx.out(0);
  size_t width = DTypeSize(out.dtype);
  const uint8_t* pc = c.as<uint8_t>();
  const uint8_t* px = x.as<uint8_t>();
  const uint8_t* py = y.as<uint8_t>();
  uint8_t* po = out.as<uint8_t>();
  std::array<std::vector<int64_t>, 3> s{BroadcastStrides(c.dims, out.dims),
                                        BroadcastStrides(x.dims, out.dims),
                                        BroadcastStrides(y.dims, out.dims)};
  ForEachBroadcast<3>(out.dims, s, [&](int64_t i, const std::array<int64_t, 3>& o) {
    const uint8_t* src = pc[o[0]] ? px + o[1] * width : py + o[2] * width;
    std::memcpy(po + i * width, src, width);
  });
  return Status::Ok();
}

// Sum, Max, Min, Mean over any number of broadcast inputs, accumulated in
// Acc<T> and stored once.
Status VariadicKernel(KernelContext& ctx, BinOp op, bool mean) {
  TensorRef& out = ctx.out(0);
  size_t n_in = ctx.inputs.size();
  bool ok = VisitType(out.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = Acc<T>;
    std::vector<A> acc(out.numel());
    auto fn = BinaryFn<T>(op);
    for (size_t k = 0; k < n_in; ++k) {
      const TensorRef& in = ctx.in(k);
      const T* p = in.as<T>();
      std::array<std::vector<int64_t>, 1> s{BroadcastStrides(in.dims, out.dims)};
      ForEachBroadcast<1>(out.dims, s, [&](int64_t i, const std::array<int64_t, 1>& o) {
        acc[i] = k == 0 ? Load(p[o[0]]) : fn(acc[i], Load(p[o[0]]));
      });
    }
    T* po = out.as<T>();
    for (int64_t i = 0; i < out.numel(); ++i) {
      if constexpr (!std::is_same_v<A, bool>) {
        if (mean) acc[i] = acc[i] / static_cast<A>(n_in);
      }
      po[i] = Store<T>(acc[i]);
    }
  });
  if (!ok) return ctx.Error("unsupported element type");
  return Status::Ok();
}

Status SumKernel(KernelContext& ctx) { return VariadicKernel(ctx, BinOp::kAdd, false); }
Status MeanKernel(KernelContext& ctx) { return VariadicKernel(ctx, BinOp::kAdd, true); }
Status MaxKernel(KernelContext& ctx) { return VariadicKernel(ctx, BinOp::kMax, false); }
Status MinKernel(KernelContext& ctx) { return VariadicKernel(ctx, BinOp::kMin, false); }

// ---- unary ----

template <typename T, typename F>
void Unary(const TensorRef& in, TensorRef& out, F f) {
  const T* p = in.as<T>();
  T* o = out.as<T>();
  for (int64_t i = 0; i < in.numel(); ++i) o[i] = Store<T>(f(Load(p[i])));
}

// A unary op on the float types only, computing in Acc<T> (float or double).
template <typename F>
Status FloatUnary(KernelContext& ctx, F f) {
  bool ok = VisitFloat(ctx.in(0).dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Unary<T>(ctx.in(0), ctx.out(0), [&](Acc<T> x) { return static_cast<Acc<T>>(f(x)); });
  });
  if (!ok) return ctx.Error("expects a float tensor");
  return Status::Ok();
}

// A unary op on every numeric type.
template <typename F>
Status NumericUnary(KernelContext& ctx, F f) {
  bool ok = VisitType(ctx.in(0).dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (!std::is_same_v<T, bool>)
      Unary<T>(ctx.in(0), ctx.out(0), [&](Acc<T> x) { return static_cast<Acc<T>>(f(x)); });
  });
  if (!ok || ctx.in(0).dtype == DType::kBool) return ctx.Error("expects a numeric tensor");
  return Status::Ok();
}

#define AMP_NUMERIC_UNARY(Name, Op)                                                         \
  Status Name(KernelContext& ctx) {                                                         \
    return NumericUnary(ctx, [](auto x) -> decltype(x) { return UnaryMath<UnOp::Op>(x); }); \
  }
AMP_NUMERIC_UNARY(AbsKernel, kAbs)
AMP_NUMERIC_UNARY(NegKernel, kNeg)
AMP_NUMERIC_UNARY(SignKernel, kSign)
AMP_NUMERIC_UNARY(ReluKernel, kRelu)
#undef AMP_NUMERIC_UNARY
Status IdentityKernel(KernelContext& ctx) {
  if (ctx.out(0).data != ctx.in(0).data)
    std::memcpy(ctx.out(0).data, ctx.in(0).data, ctx.in(0).nbytes());
  return Status::Ok();
}

#define AMP_FLOAT_UNARY(Name, Op)                                          \
  Status Name(KernelContext& ctx) {                                        \
    return FloatUnary(ctx, [](auto x) { return UnaryMath<UnOp::Op>(x); }); \
  }
AMP_FLOAT_UNARY(CeilKernel, kCeil)
AMP_FLOAT_UNARY(FloorKernel, kFloor)
AMP_FLOAT_UNARY(RoundKernel, kRound)
AMP_FLOAT_UNARY(CosKernel, kCos)
AMP_FLOAT_UNARY(SinKernel, kSin)
AMP_FLOAT_UNARY(TanhKernel, kTanh)
AMP_FLOAT_UNARY(ErfKernel, kErf)
AMP_FLOAT_UNARY(ExpKernel, kExp)
AMP_FLOAT_UNARY(LogKernel, kLog)
AMP_FLOAT_UNARY(SqrtKernel, kSqrt)
AMP_FLOAT_UNARY(ReciprocalKernel, kReciprocal)
AMP_FLOAT_UNARY(SigmoidKernel, kSigmoid)
AMP_FLOAT_UNARY(SoftplusKernel, kSoftplus)
AMP_FLOAT_UNARY(SoftsignKernel, kSoftsign)
AMP_FLOAT_UNARY(MishKernel, kMish)
AMP_FLOAT_UNARY(HardSwishKernel, kHardSwish)
#undef AMP_FLOAT_UNARY

Status EluKernel(KernelContext& ctx) {
  double alpha = ctx.node.GetFloat("alpha", 1.0f);
  return FloatUnary(ctx, [alpha](auto x) { return UnaryMath<UnOp::kElu>(x, alpha); });
}
Status LeakyReluKernel(KernelContext& ctx) {
  double alpha = ctx.node.GetFloat("alpha", 0.01f);
  return FloatUnary(ctx, [alpha](auto x) { return UnaryMath<UnOp::kLeakyRelu>(x, alpha); });
}
Status SeluKernel(KernelContext& ctx) {
  double alpha = ctx.node.GetFloat("alpha", 1.67326319217681884765625f);
  double gamma = ctx.node.GetFloat("gamma", 1.05070102214813232421875f);
  return FloatUnary(ctx, [=](auto x) { return UnaryMath<UnOp::kSelu>(x, alpha, gamma); });
}
Status HardSigmoidKernel(KernelContext& ctx) {
  double alpha = ctx.node.GetFloat("alpha", 0.2f);
  double beta = ctx.node.GetFloat("beta", 0.5f);
  return FloatUnary(ctx, [=](auto x) { return UnaryMath<UnOp::kHardSigmoid>(x, alpha, beta); });
}
Status GeluKernel(KernelContext& ctx) {
  double tanh_approx = ctx.node.GetString("approximate", "none") == "tanh" ? 1 : 0;
  return FloatUnary(ctx, [=](auto x) { return UnaryMath<UnOp::kGelu>(x, tanh_approx); });
}

template <typename Pred>
Status FloatPredicate(KernelContext& ctx, Pred pred) {
  const TensorRef& in = ctx.in(0);
  bool* o = ctx.out(0).as<bool>();
  bool ok = VisitFloat(in.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = in.as<T>();
    for (int64_t i = 0; i < in.numel(); ++i) o[i] = pred(Load(p[i]));
  });
  if (!ok) return ctx.Error("expects a float tensor");
  return Status::Ok();
}
Status IsNaNKernel(KernelContext& ctx) {
  return FloatPredicate(ctx, [](auto x) { return std::isnan(x); });
}
Status IsInfKernel(KernelContext& ctx) {
  bool pos = ctx.node.GetInt("detect_positive", 1) != 0;
  bool neg = ctx.node.GetInt("detect_negative", 1) != 0;
  return FloatPredicate(
      ctx, [=](auto x) { return std::isinf(x) && ((x > 0 && pos) || (x < 0 && neg)); });
}
Status NotKernel(KernelContext& ctx) {
  const bool* p = ctx.in(0).as<bool>();
  bool* o = ctx.out(0).as<bool>();
  for (int64_t i = 0; i < ctx.in(0).numel(); ++i) o[i] = !p[i];
  return Status::Ok();
}

Status ClipKernel(KernelContext& ctx) {
  bool ok = VisitType(ctx.in(0).dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = Acc<T>;
    if constexpr (!std::is_same_v<A, bool>) {
      A lo = std::numeric_limits<A>::lowest(), hi = std::numeric_limits<A>::max();
      if (ctx.has_input(1) && ctx.in(1).numel() == 1) lo = Load(ctx.in(1).as<T>()[0]);
      if (ctx.has_input(2) && ctx.in(2).numel() == 1) hi = Load(ctx.in(2).as<T>()[0]);
      if (ctx.node.HasAttr("min")) lo = static_cast<A>(ctx.node.GetFloat("min", 0));
      if (ctx.node.HasAttr("max")) hi = static_cast<A>(ctx.node.GetFloat("max", 0));
      Unary<T>(ctx.in(0), ctx.out(0), [=](A x) {
        if constexpr (std::is_floating_point_v<A>)
          if (std::isnan(x)) return x;
        return std::min(std::max(x, lo), hi);
      });
    }
  });
  if (!ok) return ctx.Error("unsupported element type");
  return Status::Ok();
}

Status CastKernel(KernelContext& ctx) {
  const TensorRef& in = ctx.in(0);
  TensorRef& out = ctx.out(0);
  if (in.dtype == out.dtype) return IdentityKernel(ctx);
  bool inner_ok = true;
  bool ok = VisitType(in.dtype, [&](auto tin) {
    using TI = typename decltype(tin)::type;
    inner_ok = VisitType(out.dtype, [&](auto tout) {
      using TO = typename decltype(tout)::type;
      const TI* p = in.as<TI>();
      TO* o = out.as<TO>();
      for (int64_t i = 0; i < in.numel(); ++i) {
        auto v = Load(p[i]);
        if constexpr (std::is_same_v<TO, bool>)
          o[i] = v != 0;
        else if constexpr (std::is_same_v<TI, bool>)
          o[i] = Store<TO>(Acc<TO>(v ? 1 : 0));
        else
          o[i] = Store<TO>(v);
      }
    });
  });
  if (!ok || !inner_ok)
    return ctx.Error("no cast from ", DTypeName(in.dtype), " to ", DTypeName(out.dtype));
  return Status::Ok();
}

}  // namespace

void RegisterElementwiseKernels(KernelTable& t) {
  t["Add"] = AddKernel;
  t["Sub"] = SubKernel;
  t["Mul"] = MulKernel;
  t["Div"] = DivKernel;
  t["Mod"] = ModKernel;
  t["Pow"] = PowKernel;
  t["PRelu"] = PReluKernel;
  t["And"] = AndKernel;
  t["Or"] = OrKernel;
  t["Xor"] = XorKernel;
  t["Equal"] = EqualKernel;
  t["Greater"] = GreaterKernel;
  t["GreaterOrEqual"] = GreaterOrEqualKernel;
  t["Less"] = LessKernel;
  t["LessOrEqual"] = LessOrEqualKernel;
  t["Where"] = WhereKernel;
  t["Sum"] = SumKernel;
  t["Mean"] = MeanKernel;
  t["Max"] = MaxKernel;
  t["Min"] = MinKernel;
  t["Abs"] = AbsKernel;
  t["Neg"] = NegKernel;
  t["Sign"] = SignKernel;
  t["Relu"] = ReluKernel;
  t["Identity"] = IdentityKernel;
  t["Ceil"] = CeilKernel;
  t["Floor"] = FloorKernel;
  t["Round"] = RoundKernel;
  t["Cos"] = CosKernel;
  t["Sin"] = SinKernel;
  t["Tanh"] = TanhKernel;
  t["Erf"] = ErfKernel;
  t["Exp"] = ExpKernel;
  t["Log"] = LogKernel;
  t["Sqrt"] = SqrtKernel;
  t["Reciprocal"] = ReciprocalKernel;
  t["Sigmoid"] = SigmoidKernel;
  t["Softplus"] = SoftplusKernel;
  t["Softsign"] = SoftsignKernel;
  t["Mish"] = MishKernel;
  t["HardSwish"] = HardSwishKernel;
  t["Elu"] = EluKernel;
  t["LeakyRelu"] = LeakyReluKernel;
  t["Selu"] = SeluKernel;
  t["HardSigmoid"] = HardSigmoidKernel;
  t["Gelu"] = GeluKernel;
  t["IsNaN"] = IsNaNKernel;
  t["IsInf"] = IsInfKernel;
  t["Not"] = NotKernel;
  t["Clip"] = ClipKernel;
  t["Cast"] = CastKernel;
  t["CastLike"] = CastKernel;
}

}  // namespace amp::cpu
