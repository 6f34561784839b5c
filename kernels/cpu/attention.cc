// ai.amp Attention and AttentionGrad (fuse-attention; the ops' facts are in
// ops/attention.cc): one slice ([Sq, Sk] scores of one batch and head) at a
// time, so that no [..., Sq, Sk] tensor outlives the kernel. Each step calls
// what the unfused step calls - the same OpenBLAS GEMM per slice, Softmax's
// row arithmetic (softmax_row.h), ReduceSum's double sum, FP32 elementwise
// ops and one rounding where the unfused step casts - so on the CPU the
// fused step's values are the unfused step's bit for bit.
#include <algorithm>
#include <optional>

#include "kernels/cpu/families.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/softmax_row.h"

namespace amp::cpu {
namespace {

struct Slices {
  int64_t count = 1, sq = 0, sk = 0, d = 0, dv = 0;
  bool tb = true;             // k is [Sk, D] (read transposed), else [D, Sk]
  std::vector<int64_t> dims;  // of the scores: batch..., Sq, Sk
};

StatusOr<Slices> SlicesOf(const KernelContext& ctx) {
  const TensorRef &q = ctx.in(0), &k = ctx.in(1), &v = ctx.in(2);
  size_t r = q.dims.size();
  if (r < 2 || k.dims.size() != r || v.dims.size() != r)
    return ctx.Error("q, k and v need one rank >= 2");
  Slices s;
  s.tb = ctx.node.GetInt("transB", 1) != 0;
  s.sq = q.dims[r - 2];
  s.d = q.dims[r - 1];
  s.sk = s.tb ? k.dims[r - 2] : k.dims[r - 1];
  s.dv = v.dims[r - 1];
  for (size_t i = 0; i + 2 < r; ++i) {
    if (k.dims[i] != q.dims[i] || v.dims[i] != q.dims[i])
      return ctx.Error("q, k and v need the same batch dims");
    s.count *= q.dims[i];
  }
  if ((s.tb ? k.dims[r - 1] : k.dims[r - 2]) != s.d || v.dims[r - 2] != s.sk)
    return ctx.Error("k or v does not match q");
  s.dims.assign(q.dims.begin(), q.dims.end() - 2);
  s.dims.push_back(s.sq);
  s.dims.push_back(s.sk);
  return s;
}

// A float rounded to `t` and widened back (what storing it in t then
// loading it gives).
float RoundTo(DType t, float x) {
  if (t == DType::kFloat16) return HalfToFloat(FloatToHalf(x));
  if (t == DType::kBFloat16) return BFloat16ToFloat(FloatToBFloat16(x));
  return x;
}

// Stores n floats at element `at` of float tensor t, rounding once.
void StoreAt(TensorRef& t, int64_t at, const float* x, int64_t n) {
  VisitFloat(t.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.as<T>() + at;
    for (int64_t i = 0; i < n; ++i) p[i] = Store<T>(x[i]);
  });
}

// The additive mask, broadcast to the scores: the offset of element (i, j)
// of slice b in the mask's data.
class Mask {
 public:
  Mask(const KernelContext& ctx, size_t input, const Slices& s) {
    if (!ctx.has_input(input)) return;
    view_.emplace(ctx.in(input));
    strides_ = BroadcastStrides(ctx.in(input).dims, s.dims);
    batch_dims_.assign(s.dims.begin(), s.dims.end() - 2);
  }
  bool present() const { return view_.has_value(); }
  // Adds the mask of slice b to its scores [sq, sk].
  void AddTo(int64_t b, float* scores, int64_t sq, int64_t sk) const {
    if (!view_) return;
    int64_t base = 0;
    for (int64_t d = static_cast<int64_t>(batch_dims_.size()) - 1, rest = b; d >= 0; --d) {
      base += (rest % batch_dims_[d]) * strides_[d];
      rest /= batch_dims_[d];
    }
    const float* m = view_->data();
    int64_t si = strides_[strides_.size() - 2], sj = strides_.back();
    for (int64_t i = 0; i < sq; ++i)
      for (int64_t j = 0; j < sk; ++j) scores[i * sk + j] += m[base + i * si + j * sj];
  }

 private:
  std::optional<FloatView> view_;
  std::vector<int64_t> strides_, batch_dims_;
};

// The probabilities of slice b: p = Softmax(alpha * q . op(k) + mask) in
// FP32, and p16 = p rounded to `prob_type` (v's type, what the unfused step
// casts them to before the product with v).
void Probabilities(const Slices& s, int64_t b, float alpha, const float* q, const float* k,
                   const Mask& mask, DType prob_type, float* p, float* p16) {
  Sgemm(false, s.tb, s.sq, s.sk, s.d, alpha, q + b * s.sq * s.d, s.d, k + b * s.sk * s.d,
        s.tb ? s.d : s.sk, 0.f, p, s.sk);
  mask.AddTo(b, p, s.sq, s.sk);
  ParallelFor(s.sq, std::max<int64_t>(1, 4096 / std::max<int64_t>(s.sk, 1)),
              [&](int64_t first, int64_t last) {
                std::vector<double> row(s.sk);
                for (int64_t i = first; i < last; ++i) {
                  float* x = p + i * s.sk;
                  SoftmaxRow([&](int64_t j) -> float& { return x[j]; }, s.sk, row.data());
                  for (int64_t j = 0; j < s.sk; ++j) p16[i * s.sk + j] = RoundTo(prob_type, x[j]);
                }
              });
}

Status AttentionKernel(KernelContext& ctx) {
  AMP_ASSIGN_OR_RETURN(Slices s, SlicesOf(ctx));
  float alpha = ctx.node.GetFloat("alpha", 1.0f);
  FloatView q(ctx.in(0)), k(ctx.in(1)), v(ctx.in(2));
  Mask mask(ctx, 3, s);
  DType prob_type = ctx.in(2).dtype;
  std::vector<float> p(s.sq * s.sk), p16(s.sq * s.sk), o(s.sq * s.dv);
  for (int64_t b = 0; b < s.count; ++b) {
    Probabilities(s, b, alpha, q.data(), k.data(), mask, prob_type, p.data(), p16.data());
    Sgemm(false, false, s.sq, s.dv, s.sk, 1.f, p16.data(), s.sk, v.data() + b * s.sk * s.dv, s.dv,
          0.f, o.data(), s.dv);
    StoreAt(ctx.out(0), b * s.sq * s.dv, o.data(), s.sq * s.dv);
  }
  return Status::Ok();
}

Status AttentionGradKernel(KernelContext& ctx) {
  AMP_ASSIGN_OR_RETURN(Slices s, SlicesOf(ctx));
  float alpha = ctx.node.GetFloat("alpha", 1.0f);
  float grad_alpha = ctx.node.GetFloat("grad_alpha", alpha);
  bool dk_trans = ctx.node.GetInt("dk_trans", 0) != 0;
  FloatView q(ctx.in(0)), k(ctx.in(1)), v(ctx.in(2)), dout(ctx.in(3));
  Mask mask(ctx, 4, s);
  DType prob_type = ctx.in(2).dtype, ds_type = ctx.in(0).dtype;
  int64_t n = s.sq * s.sk;
  std::vector<float> p(n), p16(n), dp(n), ds(n);
  std::vector<float> dq(s.sq * s.d), dk(s.sk * s.d), dv(s.sk * s.dv);
  for (int64_t b = 0; b < s.count; ++b) {
    const float* qb = q.data() + b * s.sq * s.d;
    const float* kb = k.data() + b * s.sk * s.d;
    const float* vb = v.data() + b * s.sk * s.dv;
    const float* dob = dout.data() + b * s.sq * s.dv;
    Probabilities(s, b, alpha, q.data(), k.data(), mask, prob_type, p.data(), p16.data());
    // dP = dO . v^T in FP32; dv = round(P)^T . dO.
    Sgemm(false, true, s.sq, s.sk, s.dv, 1.f, dob, s.dv, vb, s.dv, 0.f, dp.data(), s.sk);
    Sgemm(true, false, s.sk, s.dv, s.sq, 1.f, p16.data(), s.sk, dob, s.dv, 0.f, dv.data(), s.dv);
    // Softmax's backward: dS = (dP - rowsum(dP * P)) * P, rounded to q's type.
    ParallelFor(s.sq, std::max<int64_t>(1, 4096 / std::max<int64_t>(s.sk, 1)),
                [&](int64_t first, int64_t last) {
                  for (int64_t i = first; i < last; ++i) {
                    const float* pi = p.data() + i * s.sk;
                    const float* dpi = dp.data() + i * s.sk;
                    double acc = 0;
                    for (int64_t j = 0; j < s.sk; ++j) acc += static_cast<double>(dpi[j] * pi[j]);
                    float r = static_cast<float>(acc);
                    for (int64_t j = 0; j < s.sk; ++j)
                      ds[i * s.sk + j] = RoundTo(ds_type, (dpi[j] - r) * pi[j]);
                  }
                });
    // dq = grad_alpha * dS . op(k)^T; dk = grad_alpha * dS^T . q (or q^T . dS).
    Sgemm(false, !s.tb, s.sq, s.d, s.sk, grad_alpha, ds.data(), s.sk, kb, s.tb ? s.d : s.sk, 0.f,
          dq.data(), s.d);
    if (dk_trans)
      Sgemm(true, false, s.d, s.sk, s.sq, grad_alpha, qb, s.d, ds.data(), s.sk, 0.f, dk.data(),
            s.sk);
    else
      Sgemm(true, false, s.sk, s.d, s.sq, grad_alpha, ds.data(), s.sk, qb, s.d, 0.f, dk.data(),
            s.d);
    if (ctx.has_output(0)) StoreAt(ctx.out(0), b * s.sq * s.d, dq.data(), s.sq * s.d);
    if (ctx.has_output(1)) StoreAt(ctx.out(1), b * s.sk * s.d, dk.data(), s.sk * s.d);
    if (ctx.has_output(2)) StoreAt(ctx.out(2), b * s.sk * s.dv, dv.data(), s.sk * s.dv);
  }
  return Status::Ok();
}

}  // namespace

void RegisterAttentionKernels(KernelTable& t) {
  t["ai.amp:Attention"] = AttentionKernel;
  t["ai.amp:AttentionGrad"] = AttentionGradKernel;
}

}  // namespace amp::cpu
