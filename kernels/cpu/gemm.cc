// GEMM kernels: Gemm and (batched, broadcasting) MatMul. float64 runs in
// double (dgemm). Half inputs are
// widened to FP32, multiplied by OpenBLAS with FP32 accumulation, and the
// result rounded once - what a tensor-core GEMM with FP32 accumulation and a
// half output does.
#include <algorithm>

#include "kernels/cpu/families.h"
#include "kernels/cpu/scalar_math.h"

namespace amp::cpu {
namespace {

// S = float: any float storage widened to FP32 (sgemm); S = double: float64
// tensors as they are (dgemm), the precision the kernel tests use as their
// reference.
template <typename S>
struct Operand;
template <>
struct Operand<float> : FloatView {
  using FloatView::FloatView;
};
template <>
struct Operand<double> {
  explicit Operand(const TensorRef& t) : ptr(t.as<double>()) {}
  const double* data() const { return ptr; }
  const double* ptr;
};

void Xgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void Xgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
           int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  Dgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Where a GEMM accumulates: the output itself when it has the accumulation
// type (no temporary, no copy), else a temporary rounded into it once.
template <typename S>
class Accumulator {
 public:
  Accumulator(TensorRef& y, int64_t n) : y_(y) {
    bool direct =
        std::is_same_v<S, double> ? y.dtype == DType::kFloat64 : y.dtype == DType::kFloat32;
    if (direct) {
      ptr_ = y.as<S>();
    } else {
      // (Not zeroed: the GEMMs, or the bias, write every element first.)
      temp_.reset(new S[static_cast<size_t>(n)]);
      ptr_ = temp_.get();
      n_ = n;
    }
  }
  S* data() { return ptr_; }
  void Store() {
    if (!temp_) return;
    if constexpr (std::is_same_v<S, double>)
      std::copy(temp_.get(), temp_.get() + n_, y_.as<double>());
    else
      NarrowInto(temp_.get(), y_);
  }

 private:
  TensorRef& y_;
  S* ptr_ = nullptr;
  std::unique_ptr<S[]> temp_;
  int64_t n_ = 0;
};

template <typename S>
Status GemmImpl(KernelContext& ctx) {
  const TensorRef& a = ctx.in(0);
  const TensorRef& b = ctx.in(1);
  TensorRef& y = ctx.out(0);
  bool ta = ctx.node.GetInt("transA", 0) != 0;
  bool tb = ctx.node.GetInt("transB", 0) != 0;
  float alpha = ctx.node.GetFloat("alpha", 1.0f);
  float beta = ctx.node.GetFloat("beta", 1.0f);
  int64_t m = y.dims[0], n = y.dims[1];
  int64_t k = ta ? a.dims[0] : a.dims[1];
  Operand<S> fa(a), fb(b);
  // Straight into the output when it has the accumulation type; else a
  // temporary rounded once at the end.
  Accumulator<S> acc(y, m * n);
  if (ctx.has_input(2) && beta != 0) {
    const TensorRef& c = ctx.in(2);
    std::vector<int64_t> s = BroadcastStrides(c.dims, y.dims);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        acc.data()[i * n + j] = static_cast<S>(ReadDouble(c, i * s[0] + j * s[1]));
  } else {
    beta = 0;
  }
  Xgemm(ta, tb, m, n, k, S(alpha), fa.data(), ta ? m : k, fb.data(), tb ? k : n, S(beta),
        acc.data(), n);
  acc.Store();
  return Status::Ok();
}

template <typename S>
Status MatMulImpl(KernelContext& ctx) {
  const TensorRef& a = ctx.in(0);
  const TensorRef& b = ctx.in(1);
  TensorRef& y = ctx.out(0);
  // ai.amp MatMulT (transpose-folding) reads A and/or B with their last two
  // axes swapped; ONNX MatMul has no flags.
  bool ta = ctx.node.GetInt("transA", 0) != 0, tb = ctx.node.GetInt("transB", 0) != 0;
  // and scales the product by alpha (fold-into-gemm); its output may have
  // another float type than its inputs (the accumulation is stored in it).
  float alpha = ctx.node.GetFloat("alpha", 1.0f);
  std::vector<int64_t> ad = a.dims, bd = b.dims;
  if (ad.size() == 1) ad.insert(ad.begin(), 1);
  if (bd.size() == 1) bd.push_back(1);
  if (ta) std::swap(ad[ad.size() - 1], ad[ad.size() - 2]);
  if (tb) std::swap(bd[bd.size() - 1], bd[bd.size() - 2]);
  int64_t m = ad[ad.size() - 2], k = ad.back(), n = bd.back();
  // Batch dims of the output (the broadcast of both operands' batch dims).
  std::vector<int64_t> batch_a(ad.begin(), ad.end() - 2), batch_b(bd.begin(), bd.end() - 2);
  size_t br = std::max(batch_a.size(), batch_b.size());
  std::vector<int64_t> batch(br, 1);
  for (size_t i = 0; i < br; ++i) {
    int64_t da = i + batch_a.size() >= br ? batch_a[i + batch_a.size() - br] : 1;
    int64_t db = i + batch_b.size() >= br ? batch_b[i + batch_b.size() - br] : 1;
    batch[i] = std::max(da, db);
  }
  std::vector<int64_t> sa = BroadcastStrides(batch_a, batch), sb = BroadcastStrides(batch_b, batch);
  int64_t nbatch = 1;
  for (int64_t d : batch) nbatch *= d;
  Operand<S> fa(a), fb(b);
  Accumulator<S> acc(y, nbatch * m * n);
  // The epilogue (ops/gemm.cc: InferEpilogue): the bias starts the
  // accumulation (BLAS adds the product to it), the activation is applied
  // to the sum before it is stored, so the result is what the Gemm with a
  // bias and then the Relu gave.
  S beta = 0;
  if (ctx.has_input(2)) {
    const TensorRef& bias = ctx.in(2);
    std::vector<S> row(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) row[j] = static_cast<S>(ReadDouble(bias, j));
    for (int64_t r = 0; r < nbatch * m; ++r) std::copy(row.begin(), row.end(), acc.data() + r * n);
    beta = 1;
  }
  auto finish = [&] {
    std::string act = ctx.node.GetString("activation", "");
    int64_t rows = nbatch * m, mask_row = (n + 127) / 128 * 16;  // bytes per row of a mask
    if (act == "relu")
      for (int64_t i = 0; i < rows * n; ++i) acc.data()[i] = UnaryMath<UnOp::kRelu>(acc.data()[i]);
    if (act == "drelu") {
      // ReLU's gradient: kept where the forward's result was > 0.
      const uint8_t* mask = ctx.in(3).as<uint8_t>();
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < n; ++j)
          if (!(mask[r * mask_row + j / 8] >> (j % 8) & 1)) acc.data()[r * n + j] = 0;
    }
    acc.Store();
    if (ctx.node.GetInt("relu_mask", 0) != 0) {
      // The stored result's sign (what a Greater(result, 0) of it reads).
      TensorRef& mask = ctx.out(1);
      uint8_t* bits = mask.as<uint8_t>();
      std::fill(bits, bits + mask.numel(), uint8_t{0});
      FloatView stored(y);  // (the output itself when FP32, else one widening pass)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < n; ++j)
          if (stored.data()[r * n + j] > 0) bits[r * mask_row + j / 8] |= uint8_t(1u << (j % 8));
    }
    if (std::string of = ctx.node.GetString("bias_grad", ""); !of.empty()) {
      // The sums of op(A)'s rows or op(B)'s columns over k, in the order
      // ReduceSum adds them.
      TensorRef& db = ctx.out(1);
      bool of_a = of == "A";
      std::vector<double> sum(static_cast<size_t>(of_a ? m : n), 0.0);
      for (int64_t kk = 0; kk < k; ++kk)
        for (size_t i = 0; i < sum.size(); ++i) {
          auto j = static_cast<int64_t>(i);
          sum[i] += static_cast<double>(of_a ? fa.data()[ta ? kk * m + j : j * k + kk]
                                             : fb.data()[tb ? j * k + kk : kk * n + j]);
        }
      if (db.dtype == DType::kFloat64) {
        std::copy(sum.begin(), sum.end(), db.as<double>());
      } else {
        std::vector<float> rounded(sum.begin(), sum.end());
        FromFloat(rounded, db);
      }
    }
    return Status::Ok();
  };
  int64_t nb = 1;
  for (int64_t d : batch_b) nb *= d;
  if (nb == 1 && !ta) {
    // B is one matrix for every batch (a weight) and A's rows are
    // contiguous: one GEMM over all of A's rows, not one per batch.
    Xgemm(ta, tb, nbatch * m, n, k, S(alpha), fa.data(), k, fb.data(), tb ? k : n, beta, acc.data(),
          n);
    return finish();
  }
  std::vector<int64_t> idx(br, 0);
  for (int64_t bi = 0; bi < nbatch; ++bi) {
    int64_t oa = 0, ob = 0;
    for (size_t d = 0; d < br; ++d) {
      oa += idx[d] * sa[d];
      ob += idx[d] * sb[d];
    }
    Xgemm(ta, tb, m, n, k, S(alpha), fa.data() + oa * m * k, ta ? m : k, fb.data() + ob * k * n,
          tb ? k : n, beta, acc.data() + bi * m * n, n);
    for (int64_t d = static_cast<int64_t>(br) - 1; d >= 0; --d) {
      if (++idx[d] < batch[d]) break;
      idx[d] = 0;
    }
  }
  return finish();
}

Status GemmKernel(KernelContext& ctx) {
  DType t = ctx.in(0).dtype;
  if (!IsFloat(t)) return ctx.Error("Gemm runs on float types");
  return t == DType::kFloat64 ? GemmImpl<double>(ctx) : GemmImpl<float>(ctx);
}

Status MatMulKernel(KernelContext& ctx) {
  DType t = ctx.in(0).dtype;
  if (!IsFloat(t)) return ctx.Error("MatMul runs on float types");
  return t == DType::kFloat64 ? MatMulImpl<double>(ctx) : MatMulImpl<float>(ctx);
}

}  // namespace

void RegisterGemmKernels(KernelTable& t) {
  t["Gemm"] = GemmKernel;
  t["MatMul"] = MatMulKernel;
  t["ai.amp:MatMulT"] = MatMulKernel;  // MatMul reading transA/transB
}

}  // namespace amp::cpu
