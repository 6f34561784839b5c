// Loss kernels: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (with
// class weights, ignore_index, and none/sum/mean reductions), in double.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "kernels/cpu/families.h"

namespace amp::cpu {
namespace {

// NLL over log-probabilities laid out [N, C, D] (D = product of extra dims).
Status Nll(KernelContext& ctx, const std::vector<double>& logp, int64_t n, int64_t c, int64_t d,
           const TensorRef& target, TensorRef& out) {
  std::string reduction = ctx.node.GetString("reduction", "mean");
  bool has_ignore = ctx.node.HasAttr("ignore_index");
  int64_t ignore = ctx.node.GetInt("ignore_index", 0);
  std::vector<float> weight;
  if (ctx.has_input(2)) weight = ToFloat(ctx.in(2));
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
  return Nll(ctx, logp, n, c, d, ctx.in(1), ctx.out(0));
}

Status SceKernel(KernelContext& ctx) {
  const TensorRef& x = ctx.in(0);
  int64_t n = x.dims[0], c = x.dims[1], d = Product(x.dims, 2);
  std::vector<float> f = ToFloat(x);
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
  AMP_RETURN_IF_ERROR(Nll(ctx, logp, n, c, d, ctx.in(1), ctx.out(0)));
  if (ctx.has_output(1)) FromFloat(std::vector<float>(logp.begin(), logp.end()), ctx.out(1));
  return Status::Ok();
}

}  // namespace

void RegisterLossKernels(KernelTable& t) {
  t["NegativeLogLikelihoodLoss"] = NllKernel;
  t["SoftmaxCrossEntropyLoss"] = SceKernel;
}

}  // namespace amp::cpu
