// The CPU kernel interface. A kernel computes one node: it reads its input
// tensors and writes its outputs, whose shapes the runtime's static plan has
// already fixed (shape inference ran before planning), into memory the plan
// assigned.
//
// Numerics: float16 and bfloat16 are storage types. Every kernel loads them
// into float, computes in FP32 (reductions and GEMMs accumulate in FP32 or
// wider) and rounds once, to nearest even, when it stores the result - what a
// GPU kernel with FP32 accumulation does.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "compiler/ir.h"
#include "compiler/kernel_attrs.h"
#include "compiler/status.h"
#include "compiler/tensor.h"
#include "kernels/tensor_ref.h"

namespace amp {
class Communicator;
}  // namespace amp

namespace amp::cpu {

struct KernelContext {
  const KernelAttrs& node;               // the op and its attributes, decoded once
  std::vector<const TensorRef*> inputs;  // null where an optional input is omitted
  std::vector<TensorRef*> outputs;       // null where an optional output is unused
  uint64_t step = 0;                     // the training step (random ops mix it into their seed)
  Communicator* comm = nullptr;          // the ranks of a data-parallel run (null: one rank)

  bool has_input(size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
  bool has_output(size_t i) const { return i < outputs.size() && outputs[i] != nullptr; }
  const TensorRef& in(size_t i) const { return *inputs[i]; }
  TensorRef& out(size_t i) const { return *outputs[i]; }
  template <typename... Args>
  Status Error(const Args&... args) const {
    return InvalidArgument(node.Describe(), ": ", args...);
  }
};

using KernelFn = Status (*)(KernelContext&);

// The kernel for an op (domain "", "ai.onnx.preview.training" or "ai.amp"), or null.
KernelFn FindKernel(const std::string& domain, const std::string& op_type);
// Every op with a CPU kernel, "domain:Op" for non-default domains.
std::vector<std::string> KernelOpNames();

// ---- element types ----

struct f16 {
  uint16_t bits;
};
struct bf16 {
  uint16_t bits;
};

// The type arithmetic runs in: float for the 16-bit floats and float32,
// double for float64, int64 for integers, bool stays bool.
template <typename T>
using Acc = std::conditional_t<
    std::is_same_v<T, f16> || std::is_same_v<T, bf16> || std::is_same_v<T, float>, float,
    std::conditional_t<std::is_same_v<T, double>, double,
                       std::conditional_t<std::is_same_v<T, bool>, bool, int64_t>>>;

template <typename T>
inline Acc<T> Load(T v) {
  if constexpr (std::is_same_v<T, f16>)
    return HalfToFloat(v.bits);
  else if constexpr (std::is_same_v<T, bf16>)
    return BFloat16ToFloat(v.bits);
  else
    return static_cast<Acc<T>>(v);
}

template <typename T, typename V>
inline T Store(V v) {
  if constexpr (std::is_same_v<T, f16>)
    return f16{FloatToHalf(static_cast<float>(v))};
  else if constexpr (std::is_same_v<T, bf16>)
    return bf16{FloatToBFloat16(static_cast<float>(v))};
  else if constexpr (std::is_integral_v<T> && std::is_floating_point_v<V>) {
    // Float -> integer casts truncate; out-of-range and NaN saturate instead
    // of being undefined behaviour.
    if (std::isnan(v)) return T{0};
    if (v >= static_cast<V>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    if (v <= static_cast<V>(std::numeric_limits<T>::lowest()))
      return std::numeric_limits<T>::lowest();
    return static_cast<T>(v);
  } else
    return static_cast<T>(v);
}

template <typename T>
inline constexpr bool kIsFloat = std::is_same_v<T, f16> || std::is_same_v<T, bf16> ||
                                 std::is_same_v<T, float> || std::is_same_v<T, double>;

template <typename T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<T>{}) with T the C++ type of `dtype`; false if none.
template <typename F>
bool VisitType(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32:
      f(TypeTag<float>{});
      return true;
    case DType::kFloat16:
      f(TypeTag<f16>{});
      return true;
    case DType::kBFloat16:
      f(TypeTag<bf16>{});
      return true;
    case DType::kFloat64:
      f(TypeTag<double>{});
      return true;
    case DType::kInt8:
      f(TypeTag<int8_t>{});
      return true;
    case DType::kInt16:
      f(TypeTag<int16_t>{});
      return true;
    case DType::kInt32:
      f(TypeTag<int32_t>{});
      return true;
    case DType::kInt64:
      f(TypeTag<int64_t>{});
      return true;
    case DType::kUInt8:
      f(TypeTag<uint8_t>{});
      return true;
    case DType::kUInt16:
      f(TypeTag<uint16_t>{});
      return true;
    case DType::kUInt32:
      f(TypeTag<uint32_t>{});
      return true;
    case DType::kUInt64:
      f(TypeTag<uint64_t>{});
      return true;
    case DType::kBool:
      f(TypeTag<bool>{});
      return true;
    default:
      return false;
  }
}

// Same, for the floating-point types only.
template <typename F>
bool VisitFloat(DType dtype, F&& f) {
  if (!IsFloat(dtype)) return false;
  return VisitType(dtype, [&](auto tag) {
    if constexpr (kIsFloat<typename decltype(tag)::type>) f(tag);
  });
}

// ---- helpers shared by the kernel files ----

// Element i of an integer (or bool) tensor as int64.
int64_t ReadInt(const TensorRef& t, int64_t i);
// All elements of a 0-D/1-D integer tensor.
std::vector<int64_t> ReadInts(const TensorRef& t);
// Element i of any numeric tensor as double.
double ReadDouble(const TensorRef& t, int64_t i);
// A float tensor's numel elements (any float type) widened into `out`, and
// numel floats rounded into a float tensor; on the kernels' threads (each
// element converts alone: the result does not depend on their count).
void WidenInto(const TensorRef& t, float* out);
void NarrowInto(const float* values, TensorRef& t);
// A float32 copy of a float tensor (any float type).
std::vector<float> ToFloat(const TensorRef& t);
// A float32 view of a float tensor: the tensor itself, or a widened copy
// (in memory that is not first zeroed).
class FloatView {
 public:
  explicit FloatView(const TensorRef& t) {
    if (t.dtype == DType::kFloat32) {
      ptr_ = t.as<float>();
    } else {
      copy_.reset(new float[static_cast<size_t>(t.numel())]);
      WidenInto(t, copy_.get());
      ptr_ = copy_.get();
    }
  }
  const float* data() const { return ptr_; }

 private:
  const float* ptr_;
  std::unique_ptr<float[]> copy_;
};

// Stores `values` (numel of t) into a float tensor, rounding once.
void FromFloat(const std::vector<float>& values, TensorRef& t);
// (Strides and BroadcastStrides: kernels/tensor_ref.h, shared with CUDA.)
inline int64_t NormalizeAxis(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

// C[M,N] = alpha * op(A) op(B) + beta * C, FP32, row-major, through OpenBLAS.
void Sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// The same in float64.
void Dgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
           const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
           int64_t ldc);

// ---- sliding windows (convolution and pooling) ----

int64_t Product(const std::vector<int64_t>& v, size_t from = 0);
// Attribute `name`, or `r` copies of `def` when absent.
std::vector<int64_t> AttrOr(const KernelAttrs& n, const char* name, size_t r, int64_t def);
// For every kernel position kp and every position p of the "small" grid (the
// output grid of Conv and pooling, the input grid of ConvTranspose): the flat
// index on the "large" grid at small*stride - pad + k*dilation, or -1 where
// that falls outside (padding). Laid out [kp][p].
std::vector<int64_t> IndexTable(const std::vector<int64_t>& small,
                                const std::vector<int64_t>& large,
                                const std::vector<int64_t>& kernel,
                                const std::vector<int64_t>& strides,
                                const std::vector<int64_t>& pad_begin,
                                const std::vector<int64_t>& dilations);
// Padding at the start of each spatial dim, from pads or auto_pad.
std::vector<int64_t> PadBegin(const KernelAttrs& n, const std::vector<int64_t>& in,
                              const std::vector<int64_t>& out, const std::vector<int64_t>& kernel,
                              const std::vector<int64_t>& strides,
                              const std::vector<int64_t>& dilations);

}  // namespace amp::cpu
