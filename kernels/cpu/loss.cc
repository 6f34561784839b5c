// Loss kernels: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (with
// class weights, ignore_index, and none/sum/mean reductions), in double, and
// ai.amp SoftmaxCrossEntropyGrad (the loss's gradient in one pass) and
// SoftmaxCrossEntropy (the loss and its gradient in one pass).
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "kernels/cpu/families.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/softmax_row.h"

namespace amp::cpu {
namespace {

// NLL over log-probabilities laid out [N, C, D] (D = product of extra dims).
// Class weights from `weights` when set.
Status Nll(KernelContext& ctx, const std::vector<double>& logp, int64_t n, int64_t c, int64_t d,
           const TensorRef& target, const TensorRef* weights, TensorRef& out) {
  std::string reduction = ctx.node.GetString("reduction", "mean");
  bool has_ignore = ctx.node.HasAttr("ignore_index");
  int64_t ignore = ctx.node.GetInt("ignore_index", 0);
  std::vector<float> weight;
  if (weights) weight = ToFloat(*weights);
  std::vector<double> loss(n * d, 0.0);
  double sum = 0, wsum = 0;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < d; ++i) {
      int64_t t = ReadInt(target, b * d + i);
      if (has_ignore && t == ignore) continue;
      if (t < 0 || t >= c) return ctx.Error("label ", t, " is outside [0, ", c, ") at sample ", b);
      double w = weight.empty() ? 1.0 : weight[t];
      double l = -logp[(b * c + t) * d + i] * w;
      loss[b * d + i] = l;
      sum += l;
      wsum += w;
    }
  std::vector<float> result;
  if (reduction == "none") {
    result.assign(loss.begin(), loss.end());
  } else if (reduction == "sum") {
    result = {static_cast<float>(sum)};
  } else {
    result = {static_cast<float>(wsum == 0 ? (sum == 0 ? 0.0 : sum / wsum) : sum / wsum)};
  }
  FromFloat(result, out);
  return Status::Ok();
}

Status NllKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  int64_t n = x.dims[0], c = x.dims[1], d = Product(x.dims, 2);
  std::vector<float> f = ToFloat(x);
  std::vector<double> logp(f.begin(), f.end());
  return Nll(ctx, logp, n, c, d, ctx.in(1), ctx.has_input(2) ? &ctx.in(2) : nullptr, ctx.out(0));
}

// SoftmaxCrossEntropyLoss of the logits `f` laid out [N, C, D], in double
// (class weights from `weights` when set): the loss to `out`, and the
// log-probabilities to `log_prob` if set.
Status SceLoss(KernelContext& ctx, const std::vector<float>& f, int64_t n, int64_t c, int64_t d,
               const TensorRef* weights, TensorRef& out, TensorRef* log_prob) {
  std::vector<double> logp(f.size());
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < d; ++i) {
      double peak = -std::numeric_limits<double>::infinity();
      for (int64_t k = 0; k < c; ++k) peak = std::max(peak, double(f[(b * c + k) * d + i]));
      double s = 0;
      for (int64_t k = 0; k < c; ++k) s += std::exp(f[(b * c + k) * d + i] - peak);
      double lse = std::log(s) + peak;
      for (int64_t k = 0; k < c; ++k) logp[(b * c + k) * d + i] = f[(b * c + k) * d + i] - lse;
    }
  AMP_RETURN_IF_ERROR(Nll(ctx, logp, n, c, d, ctx.in(1), weights, out));
  if (log_prob) FromFloat(std::vector<float>(logp.begin(), logp.end()), *log_prob);
  return Status::Ok();
}

Status SceKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  int64_t n = x.dims[0], c = x.dims[1], d = Product(x.dims, 2);
  return SceLoss(ctx, ToFloat(x), n, c, d, ctx.has_input(2) ? &ctx.in(2) : nullptr, ctx.out(0),
                 ctx.has_output(1) ? &ctx.out(1) : nullptr);
}

// The loss's gradient over FP32 logits px [n, c]: Softmax's row arithmetic
// (softmax_row.h), OneHot's class of each label, then the FP32 Sub and Mul
// of the unfused step, into dx; with `half`, dx rounded to it too.
Status SceGradRows(KernelContext& ctx, const float* px, int64_t n, int64_t c,
                   const TensorRef& scale, float divisor, float* dx, TensorRef* half) {
  if (scale.dtype != DType::kFloat32) return ctx.Error("reads a float32 scale");
  bool per_row = scale.numel() != 1;
  if (per_row && scale.numel() != n) return ctx.Error("scale must have one value or one per row");
  const float* ps = scale.as<float>();
  ParallelFor(n, std::max<int64_t>(1, 4096 / std::max<int64_t>(c, 1)),
              [&](int64_t first, int64_t last) {
                std::vector<double> scratch(static_cast<size_t>(c));
                for (int64_t r = first; r < last; ++r) {
                  float* row = dx + r * c;
                  std::copy(px + r * c, px + (r + 1) * c, row);
                  SoftmaxRow([&](int64_t k) -> float& { return row[k]; }, c, scratch.data());
                  // (OneHot: a NaN, infinite or huge label is no class; negative ones
                  // count from the back.)
                  double d = ReadDouble(ctx.in(1), r);
                  int64_t label = std::abs(d) < 0x1p62 ? static_cast<int64_t>(d) : c;
                  if (label < 0) label += c;
                  // (The unfused step's FP32 Div of the scale, when folded in.)
                  float s = divisor == 1.0f ? ps[per_row ? r : 0] : ps[per_row ? r : 0] / divisor;
                  for (int64_t k = 0; k < c; ++k)
                    row[k] = (row[k] - (k == label ? 1.0f : 0.0f)) * s;
                }
              });
  if (half) {
    std::vector<float> all(dx, dx + n * c);
    FromFloat(all, *half);
  }
  return Status::Ok();
}

// ai.amp SoftmaxCrossEntropyGrad (ops/loss.cc): the values of the unfused
// step, bit for bit.
Status SceGradKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  if (x.dtype != DType::kFloat32 || x.rank() != 2)
    return ctx.Error("reads 2-D float32 logits and a float32 scale");
  return SceGradRows(ctx, x.as<float>(), x.dims[0], x.dims[1], ctx.in(2), 1.0f,
                     ctx.out(0).as<float>(), ctx.has_output(1) ? &ctx.out(1) : nullptr);
}

// ai.amp SoftmaxCrossEntropy (ops/loss.cc): SoftmaxCrossEntropyLoss and
// SoftmaxCrossEntropyGrad of the logits widened to FP32 (exactly, as the
// Cast before them), bit for bit the unfused step's loss and gradient.
Status SceFusedKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  if (x.rank() != 2 || !IsFloat(x.dtype)) return ctx.Error("reads 2-D float logits");
  int64_t n = x.dims[0], c = x.dims[1];
  std::vector<float> f = ToFloat(x);
  AMP_RETURN_IF_ERROR(SceLoss(ctx, f, n, c, 1, nullptr, ctx.out(0), nullptr));
  return SceGradRows(ctx, f.data(), n, c, ctx.in(2), ctx.node.GetFloat("scale_divisor", 1.0f),
                     ctx.out(1).as<float>(), ctx.has_output(2) ? &ctx.out(2) : nullptr);
}

}  // namespace

void RegisterLossKernels(KernelTable& t) {
  t["ai.amp:SoftmaxCrossEntropy"] = SceFusedKernel;
  t["ai.amp:SoftmaxCrossEntropyGrad"] = SceGradKernel;
  t["NegativeLogLikelihoodLoss"] = NllKernel;
  t["SoftmaxCrossEntropyLoss"] = SceKernel;
}

}  // namespace amp::cpu
