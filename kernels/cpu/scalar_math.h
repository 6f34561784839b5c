// The arithmetic of the CPU elementwise ops on one element, written once:
// the op kernels (elementwise.cc) and the fused-program interpreter
// (fused.cc) both call these, so a fused chain computes what the unfused ops
// compute, bit for bit. A is the type arithmetic runs in (Acc<T>: float,
// double, int64 or bool).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

namespace amp::cpu {

enum class UnOp {
  kAbs,
  kNeg,
  kSign,
  kRelu,
  kCeil,
  kFloor,
  kRound,
  kCos,
  kSin,
  kTanh,
  kErf,
  kExp,
  kLog,
  kSqrt,
  kReciprocal,
  kSigmoid,
  kSoftplus,
  kSoftsign,
  kMish,
  kHardSwish,
  kElu,          // p0 alpha
  kLeakyRelu,    // p0 alpha
  kSelu,         // p0 alpha, p1 gamma
  kHardSigmoid,  // p0 alpha, p1 beta
  kGelu,         // p0 != 0: the tanh approximation
};

// One unary op on a value (float or double; Abs, Neg, Sign and Relu on any
// numeric type); p0 and p1 are its attributes (see each op).
template <UnOp op, typename A>
inline A UnaryMath(A x, double p0 = 0, double p1 = 0) {
  if constexpr (op == UnOp::kAbs) {
    if constexpr (std::is_unsigned_v<A>)
      return x;
    else
      return x < 0 ? -x : x;
  } else if constexpr (op == UnOp::kNeg) {
    return -x;
  } else if constexpr (op == UnOp::kSign) {
    if constexpr (std::is_floating_point_v<A>)
      if (std::isnan(x)) return x;
    return x > 0 ? A{1} : (x < 0 ? static_cast<A>(-1) : A{0});
  } else if constexpr (op == UnOp::kRelu) {
    // NaN stays NaN (IEEE max(NaN, 0), as onnxruntime and PyTorch give).
    if constexpr (std::is_floating_point_v<A>)
      if (std::isnan(x)) return x;
    return x > 0 ? x : A{0};
  } else if constexpr (op == UnOp::kCeil) {
    return std::ceil(x);
  } else if constexpr (op == UnOp::kFloor) {
    return std::floor(x);
  } else if constexpr (op == UnOp::kRound) {
    return std::nearbyint(x);
  } else if constexpr (op == UnOp::kCos) {
    return std::cos(x);
  } else if constexpr (op == UnOp::kSin) {
    return std::sin(x);
  } else if constexpr (op == UnOp::kTanh) {
    return std::tanh(x);
  } else if constexpr (op == UnOp::kErf) {
    return std::erf(x);
  } else if constexpr (op == UnOp::kExp) {
    return std::exp(x);
  } else if constexpr (op == UnOp::kLog) {
    return std::log(x);
  } else if constexpr (op == UnOp::kSqrt) {
    return std::sqrt(x);
  } else if constexpr (op == UnOp::kReciprocal) {
    return 1 / x;
  } else if constexpr (op == UnOp::kSigmoid) {
    return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x));
  } else if constexpr (op == UnOp::kSoftplus) {
    return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  } else if constexpr (op == UnOp::kSoftsign) {
    return x / (1 + std::abs(x));
  } else if constexpr (op == UnOp::kMish) {
    return x * std::tanh(x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)));
  } else if constexpr (op == UnOp::kHardSwish) {
    return x * std::max<A>(0, std::min<A>(1, x / 6 + 0.5));
  } else if constexpr (op == UnOp::kElu) {
    return static_cast<A>(x > 0 ? x : p0 * (std::exp(x) - 1));
  } else if constexpr (op == UnOp::kLeakyRelu) {
    return x >= 0 ? x : static_cast<A>(p0) * x;
  } else if constexpr (op == UnOp::kSelu) {
    return static_cast<A>(x > 0 ? p1 * x : p1 * (p0 * std::exp(x) - p0));
  } else if constexpr (op == UnOp::kHardSigmoid) {
    if (std::isnan(x)) return x;
    return std::max<A>(0, std::min<A>(1, static_cast<A>(p0) * x + static_cast<A>(p1)));
  } else {
    static_assert(op == UnOp::kGelu);
    if (p0 != 0)
      return A(0.5) * x * (1 + std::tanh(A(0.7978845608028654) * (x + A(0.044715) * x * x * x)));
    return A(0.5) * x * (1 + std::erf(x * A(0.7071067811865476)));
  }
}

enum class BinOp {
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
  kFMod,
  kPRelu,
  kAnd,
  kOr,
  kXor,
  kEqual,
  kGreater,
  kGreaterEq,
  kLess,
  kLessEq,
  kMax,
  kMin,
};

// One arithmetic or logical binary op (not the comparisons: Compare).
template <typename A>
inline A BinaryMath(BinOp op, A x, A y) {
  if constexpr (std::is_same_v<A, bool>) {
    switch (op) {
      case BinOp::kAnd:
        return x && y;
      case BinOp::kOr:
        return x || y;
      case BinOp::kXor:
        return x != y;
      case BinOp::kMax:
        return x || y;
      case BinOp::kMin:
        return x && y;
      default:
        return false;
    }
  } else {
    switch (op) {
      case BinOp::kAdd:
        return x + y;
      case BinOp::kSub:
        return x - y;
      case BinOp::kMul:
        return x * y;
      case BinOp::kDiv:
        if constexpr (std::is_integral_v<A>)
          return y == 0 ? A{0} : x / y;
        else
          return x / y;
      case BinOp::kFMod:
        if constexpr (std::is_integral_v<A>)
          return y == 0 ? A{0} : x % y;
        else
          return std::fmod(x, y);
      case BinOp::kMod:
        if constexpr (std::is_integral_v<A>) {
          if (y == 0) return A{0};
          A r = x % y;
          return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
        } else {
          A r = std::fmod(x, y);
          return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
        }
      case BinOp::kPRelu:
        return x < 0 ? x * y : x;
      case BinOp::kMax:
        if constexpr (std::is_floating_point_v<A>)
          if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<A>::quiet_NaN();
        return std::max(x, y);
      case BinOp::kMin:
        if constexpr (std::is_floating_point_v<A>)
          if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<A>::quiet_NaN();
        return std::min(x, y);
      default:
        return A{0};
    }
  }
}

template <typename A>
inline bool CompareMath(BinOp op, A x, A y) {
  switch (op) {
    case BinOp::kEqual:
      return x == y;
    case BinOp::kGreater:
      return x > y;
    case BinOp::kGreaterEq:
      return x >= y;
    case BinOp::kLess:
      return x < y;
    default:
      return x <= y;
  }
}

// Pow with a float base, as GPU kernels do for the common exponents:
// squares and roots as products and sqrt, std::pow otherwise.
inline float PowF(float x, double e) {
  if (e == 2.0) return x * x;
  if (e == 1.0) return x;
  if (e == 0.5) return std::sqrt(x);
  return std::pow(x, static_cast<float>(e));
}

}  // namespace amp::cpu
