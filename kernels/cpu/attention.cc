// ai.amp Attention and AttentionGrad (fuse-attention; the ops' facts are in
// ops/attention.cc, their operands' layouts decoded by ops/attention.h): one
// slice ([Sq, Sk] scores of one batch and head) at a time, so that no
// [..., Sq, Sk] tensor outlives the kernel; each operand read in place
// where its rows are contiguous (the view form's strided q, k, v), and
// written at its strides. Each step calls
// what the unfused step calls - the same OpenBLAS GEMM per slice, Softmax's
// row arithmetic (softmax_row.h), ReduceSum's double sum, FP32 elementwise
// ops and one rounding where the unfused step casts - so on the CPU the
// fused step's values are the unfused step's bit for bit.
#include "ops/attention.h"

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

#include "kernels/cpu/families.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/softmax_row.h"

namespace amp::cpu {
namespace {

// A float tensor's values as an operand's matrix of slice `b`: a pointer
// and leading dimension into the widened tensor when its rows (or, with
// `allow_trans`, its columns) are contiguous, else a contiguous copy.
// `trans`: the matrix is stored as its transpose ([cols, rows]).
struct Mat {
  const float* p = nullptr;
  int64_t ld = 0;
  bool trans = false;
  std::vector<float> copy;
};

Mat Read(const float* data, const AttentionLayout& l, const AttentionOperand& o, int64_t b,
         int64_t rows, int64_t cols, bool allow_trans) {
  Mat m;
  const float* base = data + l.SliceOffset(o, b);
  if (o.col == 1 && (rows <= 1 || o.row >= cols)) {
    m.p = base;
    m.ld = std::max<int64_t>(rows <= 1 ? cols : o.row, 1);
    return m;
  }
  if (allow_trans && o.row == 1 && (cols <= 1 || o.col >= rows)) {
    m.p = base;
    m.ld = std::max<int64_t>(cols <= 1 ? rows : o.col, 1);
    m.trans = true;
    return m;
  }
  m.copy.resize(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m.copy[r * cols + c] = base[r * o.row + c * o.col];
  m.p = m.copy.data();
  m.ld = std::max<int64_t>(cols, 1);
  return m;
}

// Stores matrix x of slice b ([rows, cols], or [cols, rows] when `trans`)
// into operand o of float tensor t, rounding once.
void Write(TensorRef& t, const AttentionLayout& l, const AttentionOperand& o, int64_t b,
           int64_t rows, int64_t cols, const float* x, bool trans) {
  int64_t base = l.SliceOffset(o, b);
  VisitFloat(t.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.as<T>() + base;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        p[r * o.row + c * o.col] = Store<T>(x[trans ? c * rows + r : r * cols + c]);
  });
}

// A float rounded to `t` and widened back (what storing it in t then
// loading it gives).
float RoundTo(DType t, float x) {
  if (t == DType::kFloat16) return HalfToFloat(FloatToHalf(x));
  if (t == DType::kBFloat16) return BFloat16ToFloat(FloatToBFloat16(x));
  return x;
}

// The additive mask, broadcast to the scores [batch..., Sq, Sk].
class Mask {
 public:
  Mask(const KernelContext& ctx, size_t input, const AttentionLayout& l) : batch_dims_(l.batch) {
    if (!ctx.has_input(input)) return;
    std::vector<int64_t> dims = l.batch;
    dims.push_back(l.sq);
    dims.push_back(l.sk);
    view_.emplace(ctx.in(input));
    strides_ = BroadcastStrides(ctx.in(input).dims, dims);
  }
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

StatusOr<AttentionLayout> LayoutOf(const KernelContext& ctx, const AttentionAttrs& attrs) {
  std::vector<std::vector<int64_t>> dims;
  for (size_t i = 0; i < ctx.inputs.size(); ++i)
    dims.push_back(ctx.has_input(i) ? ctx.in(i).dims : std::vector<int64_t>{});
  auto l = AttentionLayoutOf(attrs, dims);
  if (!l.ok()) return l.status();
  for (size_t o = 0; o < ctx.outputs.size(); ++o)
    if (ctx.has_output(o) && ctx.out(o).dims != l->out_shapes[o])
      return ctx.Error("output ", o, " is not of the shape the node's layout gives");
  return l;
}

// Zeroes the elements of output `o` no view covers (views that leave some
// out: ops/attention.cc).
Status ZeroUncovered(KernelContext& ctx, const AttentionAttrs& attrs, const AttentionLayout& l,
                     int o) {
  AMP_ASSIGN_OR_RETURN(bool tiled, AttentionOutputTiled(attrs, l, o));
  if (tiled) return Status::Ok();
  TensorRef& t = ctx.out(o);
  VisitFloat(t.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    std::fill(t.as<T>(), t.as<T>() + t.numel(), Store<T>(0.f));
  });
  return Status::Ok();
}

// The inputs widened to FP32 once each: the view form's q, k and v are
// often one tensor.
class Widened {
 public:
  Widened(const KernelContext& ctx, size_t inputs) {
    for (size_t i = 0; i < inputs; ++i) {
      const TensorRef& t = ctx.in(i);
      Key key{t.data, t.dtype, t.numel()};
      auto it = views_.find(key);
      if (it == views_.end()) it = views_.emplace(key, ctx.in(i)).first;
      data_.push_back(it->second.data());
    }
  }
  const float* operator[](size_t i) const { return data_[i]; }

 private:
  using Key = std::tuple<const void*, DType, int64_t>;  // one tensor's bytes, read as one type
  std::map<Key, FloatView> views_;
  std::vector<const float*> data_;
};

// The probabilities of slice b: p = Softmax(alpha * q . k^T + mask) in
// FP32, and p16 = p rounded to `prob_type` (v's type, what the unfused step
// casts them to before the product with v); with `stats`, each row's
// logsumexp of the scores there.
void Probabilities(const AttentionLayout& l, int64_t b, float alpha, const Mat& q, const Mat& k,
                   const Mask& mask, DType prob_type, float* p, float* p16,
                   float* stats = nullptr) {
  Sgemm(false, !k.trans, l.sq, l.sk, l.d, alpha, q.p, q.ld, k.p, k.ld, 0.f, p, l.sk);
  mask.AddTo(b, p, l.sq, l.sk);
  ParallelFor(l.sq, std::max<int64_t>(1, 4096 / std::max<int64_t>(l.sk, 1)),
              [&](int64_t first, int64_t last) {
                std::vector<double> row(l.sk);
                for (int64_t i = first; i < last; ++i) {
                  float* x = p + i * l.sk;
                  double lse = 0;
                  SoftmaxRow([&](int64_t j) -> float& { return x[j]; }, l.sk, row.data(), false,
                             stats ? &lse : nullptr);
                  if (stats) stats[i] = static_cast<float>(lse);
                  for (int64_t j = 0; j < l.sk; ++j) p16[i * l.sk + j] = RoundTo(prob_type, x[j]);
                }
              });
}

Status AttentionKernel(KernelContext& ctx) {
  AttentionAttrs attrs = AttentionAttrs::Of(ctx.node, ctx.outputs.size(), false);
  AMP_ASSIGN_OR_RETURN(AttentionLayout l, LayoutOf(ctx, attrs));
  float alpha = ctx.node.GetFloat("alpha", 1.0f);
  Widened in(ctx, 3);
  Mask mask(ctx, 3, l);
  const auto& ops = l.operands;
  AMP_RETURN_IF_ERROR(ZeroUncovered(ctx, attrs, l, 0));
  DType prob_type = ctx.in(2).dtype;
  // The softmax statistics, [slices, Sq] float32.
  float* stats = ctx.has_output(1) ? ctx.out(1).as<float>() : nullptr;
  if (stats && ctx.out(1).dtype != DType::kFloat32)
    return ctx.Error("the softmax statistics (output 1) must be float32");
  std::vector<float> p(l.sq * l.sk), p16(l.sq * l.sk), o(l.sq * l.dv);
  for (int64_t b = 0; b < l.slices; ++b) {
    Mat qb = Read(in[0], l, ops[kAttnQ], b, l.sq, l.d, false);
    Mat kb = Read(in[1], l, ops[kAttnK], b, l.sk, l.d, true);
    Mat vb = Read(in[2], l, ops[kAttnV], b, l.sk, l.dv, false);
    Probabilities(l, b, alpha, qb, kb, mask, prob_type, p.data(), p16.data(),
                  stats ? stats + b * l.sq : nullptr);
    Sgemm(false, false, l.sq, l.dv, l.sk, 1.f, p16.data(), l.sk, vb.p, vb.ld, 0.f, o.data(), l.dv);
    Write(ctx.out(0), l, ops[kAttnO], b, l.sq, l.dv, o.data(), false);
  }
  return Status::Ok();
}

// The forward's O and stats (inputs 5, 6), when given, are not read: P is
// recomputed as the unfused step computes it, so that the values stay its
// bit for bit.
Status AttentionGradKernel(KernelContext& ctx) {
  AttentionAttrs attrs = AttentionAttrs::Of(ctx.node, ctx.outputs.size(), ctx.has_input(5));
  AMP_ASSIGN_OR_RETURN(AttentionLayout l, LayoutOf(ctx, attrs));
  float alpha = ctx.node.GetFloat("alpha", 1.0f);
  float grad_alpha = ctx.node.GetFloat("grad_alpha", alpha);
  Widened in(ctx, 4);
  Mask mask(ctx, 4, l);
  const auto& ops = l.operands;
  for (int o = 0; o < static_cast<int>(ctx.outputs.size()); ++o)
    if (ctx.has_output(o)) AMP_RETURN_IF_ERROR(ZeroUncovered(ctx, attrs, l, o));
  auto out = [&](int operand) -> TensorRef* {
    int t = ops[operand].tensor;
    return ctx.has_output(t) ? &ctx.out(t) : nullptr;
  };
  // dk as [D, Sk] (q^T . dS) when that is how it is stored.
  const AttentionOperand& dko = ops[kAttnDK];
  bool dk_trans = dko.row == 1 && dko.col != 1;
  DType prob_type = ctx.in(2).dtype, ds_type = ctx.in(0).dtype;
  int64_t n = l.sq * l.sk;
  std::vector<float> p(n), p16(n), dp(n), ds(n);
  std::vector<float> dq(l.sq * l.d), dk(l.sk * l.d), dv(l.sk * l.dv);
  for (int64_t b = 0; b < l.slices; ++b) {
    Mat qb = Read(in[0], l, ops[kAttnQ], b, l.sq, l.d, false);
    Mat kb = Read(in[1], l, ops[kAttnK], b, l.sk, l.d, true);
    Mat vb = Read(in[2], l, ops[kAttnV], b, l.sk, l.dv, false);
    Mat dob = Read(in[3], l, ops[kAttnDO], b, l.sq, l.dv, false);
    Probabilities(l, b, alpha, qb, kb, mask, prob_type, p.data(), p16.data());
    // dP = dO . v^T in FP32; dv = round(P)^T . dO.
    Sgemm(false, true, l.sq, l.sk, l.dv, 1.f, dob.p, dob.ld, vb.p, vb.ld, 0.f, dp.data(), l.sk);
    Sgemm(true, false, l.sk, l.dv, l.sq, 1.f, p16.data(), l.sk, dob.p, dob.ld, 0.f, dv.data(),
          l.dv);
    // Softmax's backward: dS = (dP - rowsum(dP * P)) * P, rounded to q's type.
    ParallelFor(l.sq, std::max<int64_t>(1, 4096 / std::max<int64_t>(l.sk, 1)),
                [&](int64_t first, int64_t last) {
                  for (int64_t i = first; i < last; ++i) {
                    const float* pi = p.data() + i * l.sk;
                    const float* dpi = dp.data() + i * l.sk;
                    double acc = 0;
                    for (int64_t j = 0; j < l.sk; ++j) acc += static_cast<double>(dpi[j] * pi[j]);
                    float r = static_cast<float>(acc);
                    for (int64_t j = 0; j < l.sk; ++j)
                      ds[i * l.sk + j] = RoundTo(ds_type, (dpi[j] - r) * pi[j]);
                  }
                });
    // dq = grad_alpha * dS . k; dk = grad_alpha * dS^T . q (or q^T . dS).
    Sgemm(false, kb.trans, l.sq, l.d, l.sk, grad_alpha, ds.data(), l.sk, kb.p, kb.ld, 0.f,
          dq.data(), l.d);
    if (dk_trans)
      Sgemm(true, false, l.d, l.sk, l.sq, grad_alpha, qb.p, qb.ld, ds.data(), l.sk, 0.f, dk.data(),
            l.sk);
    else
      Sgemm(true, false, l.sk, l.d, l.sq, grad_alpha, ds.data(), l.sk, qb.p, qb.ld, 0.f, dk.data(),
            l.d);
    if (TensorRef* t = out(kAttnDQ)) Write(*t, l, ops[kAttnDQ], b, l.sq, l.d, dq.data(), false);
    if (TensorRef* t = out(kAttnDK)) Write(*t, l, dko, b, l.sk, l.d, dk.data(), dk_trans);
    if (TensorRef* t = out(kAttnDV)) Write(*t, l, ops[kAttnDV], b, l.sk, l.dv, dv.data(), false);
  }
  return Status::Ok();
}

}  // namespace

void RegisterAttentionKernels(KernelTable& t) {
  t["ai.amp:Attention"] = AttentionKernel;
  t["ai.amp:AttentionGrad"] = AttentionGradKernel;
}

}  // namespace amp::cpu
