// Collectives of a data-parallel step: ai.amp AllReduce, the mean over the
// ranks of a bucket of FP32 tensors, packed into one buffer for one
// collective call. Without a communicator (one rank) it is a copy.
#include <cstring>
#include <vector>

#include "kernels/communicator.h"
#include "kernels/cpu/families.h"

namespace amp::cpu {
namespace {

Status AllReduceKernel(KernelContext& ctx) {
  size_t total = 0;
  for (size_t k = 0; k < ctx.inputs.size(); ++k) {
    if (ctx.in(k).dtype != DType::kFloat32) return ctx.Error("input ", k, " is not float");
    total += static_cast<size_t>(ctx.in(k).numel());
  }
  int ranks = ctx.comm ? ctx.comm->size() : 1;
  if (ranks <= 1) {
    for (size_t k = 0; k < ctx.inputs.size(); ++k)
      if (ctx.out(k).data != ctx.in(k).data)
        std::memcpy(ctx.out(k).data, ctx.in(k).data, ctx.in(k).nbytes());
    return Status::Ok();
  }
  // One buffer per thread, grown to the largest bucket on the first step
  // and reused after it.
  thread_local std::vector<float> staging;
  if (staging.size() < total) staging.resize(total);
  size_t at = 0;
  for (size_t k = 0; k < ctx.inputs.size(); ++k) {
    std::memcpy(staging.data() + at, ctx.in(k).data, ctx.in(k).nbytes());
    at += static_cast<size_t>(ctx.in(k).numel());
  }
  AMP_RETURN_IF_ERROR(ctx.comm->AllReduceSum(staging.data(), total));
  const float inv = 1.0f / static_cast<float>(ranks);
  at = 0;
  for (size_t k = 0; k < ctx.inputs.size(); ++k) {
    float* out = ctx.out(k).as<float>();
    size_t n = static_cast<size_t>(ctx.in(k).numel());
    for (size_t e = 0; e < n; ++e) out[e] = staging[at + e] * inv;
    at += n;
  }
  return Status::Ok();
}

}  // namespace

void RegisterCollectiveKernels(KernelTable& t) { t["ai.amp:AllReduce"] = AllReduceKernel; }

}  // namespace amp::cpu
