// The fused multi-tensor optimizer kernels, then their launchers: Adam/AdamW
// and SGD (ai.amp FusedAdam and FusedSgd, from fuse-optimizer) and the gradient unscale with its
// finiteness check (ai.amp UnscaleCheck, from fuse-unscale). One launch updates up to
// kMaxTensors parameters (blockIdx.y picks the tensor); lr, the step count
// and the skip flag are read on the device, so a step never waits for the
// host. FP32 master weights and moments are read and written in one pass, in
// the standard ops' operation order, with rounded intrinsics (no FMA
// contraction) as the CPU kernel computes.
#include "kernels/cuda/common.cuh"

namespace amp::cuda {
namespace {

constexpr int kMaxTensors = 64;

struct AdamTensors {
  const float* p[kMaxTensors];
  const float* g[kMaxTensors];
  const float* m[kMaxTensors];
  const float* v[kMaxTensors];
  float* op[kMaxTensors];
  float* om[kMaxTensors];
  float* ov[kMaxTensors];
  int64_t n[kMaxTensors];
};

__device__ float PowLikeKernel(float x, float e) {
  if (e == 2.0f) return __fmul_rn(x, x);
  if (e == 1.0f) return x;
  if (e == 0.5f) return __fsqrt_rn(x);
  return powf(x, e);
}

__global__ void FusedAdamKernel(AdamTensors t, const float* lr_p, const float* step_p,
                                const bool* skip_p, float b1, float b2, float eps, float wd,
                                bool decoupled, float omb1, float omb2) {
  int k = blockIdx.y;
  int64_t n = t.n[k];
  float lr = *lr_p;
  float step1 = __fadd_rn(*step_p, 1.0f);
  bool skip = skip_p && *skip_p;
  float bc1 = __fsub_rn(1.0f, PowLikeKernel(b1, step1));
  float bc2_sqrt = __fsqrt_rn(__fsub_rn(1.0f, PowLikeKernel(b2, step1)));
  float step_size = __fdiv_rn(lr, bc1);
  float decay = decoupled && wd != 0 ? __fsub_rn(1.0f, __fmul_rn(lr, wd)) : 1.0f;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    float p = t.p[k][i], m = t.m[k][i], v = t.v[k][i];
    if (skip) {
      t.op[k][i] = p;
      t.om[k][i] = m;
      t.ov[k][i] = v;
      continue;
    }
    float gr = t.g[k][i];
    if (!decoupled && wd != 0) gr = __fadd_rn(gr, __fmul_rn(p, wd));
    float m1 = __fadd_rn(__fmul_rn(m, b1), __fmul_rn(gr, omb1));
    float v1 = __fadd_rn(__fmul_rn(v, b2), __fmul_rn(__fmul_rn(gr, gr), omb2));
    float base = decoupled && wd != 0 ? __fmul_rn(p, decay) : p;
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v1), bc2_sqrt), eps);
    t.op[k][i] = __fsub_rn(base, __fmul_rn(__fdiv_rn(m1, denom), step_size));
    t.om[k][i] = m1;
    t.ov[k][i] = v1;
  }
}

struct SgdTensors {
  const float* p[kMaxTensors];
  const float* g[kMaxTensors];
  const float* buf[kMaxTensors];  // null without momentum
  float* op[kMaxTensors];
  float* obuf[kMaxTensors];
  int64_t n[kMaxTensors];
};

__global__ void FusedSgdKernel(SgdTensors t, const float* lr_p, const float* step_p,
                               const bool* skip_p, float mom, float omd, bool damped, float wd,
                               bool nesterov) {
  int k = blockIdx.y;
  int64_t n = t.n[k];
  float lr = *lr_p;
  bool first = damped && *step_p == 0.0f;  // PyTorch: the first buffer is the gradient
  bool skip = skip_p && *skip_p;
  const float* buf = t.buf[k];
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    float p = t.p[k][i];
    if (skip) {
      t.op[k][i] = p;
      if (buf) t.obuf[k][i] = buf[i];
      continue;
    }
    float gr = t.g[k][i];
    if (wd != 0) gr = __fadd_rn(gr, __fmul_rn(p, wd));
    float dir = gr;
    if (buf) {
      float next = first ? gr : __fadd_rn(__fmul_rn(buf[i], mom), __fmul_rn(gr, omd));
      t.obuf[k][i] = next;
      dir = nesterov ? __fadd_rn(gr, __fmul_rn(next, mom)) : next;
    }
    t.op[k][i] = __fsub_rn(p, __fmul_rn(dir, lr));
  }
}

struct UnscaleTensors {
  const float* g[kMaxTensors];
  float* out[kMaxTensors];
  int64_t n[kMaxTensors];
};

// u = g * (1/S) for every gradient; any non-finite u raises the flag (a
// benign race: every writer writes true).
__global__ void UnscaleCheckKernel(UnscaleTensors t, const float* inv_p, bool invert, bool* found) {
  int k = blockIdx.y;
  float inv = invert ? __frcp_rn(*inv_p) : *inv_p;
  bool bad = false;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < t.n[k];
       i += int64_t{gridDim.x} * blockDim.x) {
    float u = __fmul_rn(t.g[k][i], inv);
    t.out[k][i] = u;
    bad = bad || !isfinite(u);
  }
  if (bad) *found = true;
}

// GradScaler's update of the scale and growth tracker (ai.amp
// LossScaleUpdate, ops/training.cc), and the optimizer's step count when
// given, by one thread, in place.
__global__ void LossScaleUpdateKernel(const float* s_in, const int64_t* t_in, const bool* found,
                                      const float* n_in, float* s_out, int64_t* t_out, float* n_out,
                                      LossScaleRule r) {
  if (n_in) *n_out = *found ? *n_in : __fadd_rn(*n_in, 1.0f);
  float s = *s_in;
  int64_t clean = *t_in + 1;
  bool grow = clean == r.growth_interval;
  float grown = __fmul_rn(s, r.growth_factor);
  float next = *found ? __fmul_rn(s, r.backoff_factor) : (grow && !isinf(grown) ? grown : s);
  if (r.min_scale > 0) next = fmaxf(next, r.min_scale);
  if (r.max_scale > 0) next = fminf(next, r.max_scale);
  *s_out = next;
  *t_out = *found || grow ? 0 : clean;
}

}  // namespace

Status LossScaleUpdate(const float* scale, const int64_t* tracker, const bool* found_inf,
                       const float* step, float* scale_out, int64_t* tracker_out, float* step_out,
                       const LossScaleRule& rule, void* stream) {
  LossScaleUpdateKernel<<<1, 1, 0, static_cast<cudaStream_t>(stream)>>>(
      scale, tracker, found_inf, step, scale_out, tracker_out, step_out, rule);
  return CheckLaunch("LossScaleUpdate");
}

namespace {

// Runs `launch(start, count, grid)` for each run of at most kMaxTensors
// tensors from `start`, the grid sized for the run's largest tensor and its
// y dimension the tensor; every launch checked.
template <typename Launch>
Status ForEachChunk(int n_tensors, const int64_t* sizes, const char* what, Launch&& launch) {
  for (int start = 0; start < n_tensors; start += kMaxTensors) {
    int count = n_tensors - start < kMaxTensors ? n_tensors - start : kMaxTensors;
    int64_t largest = 1;
    for (int k = 0; k < count; ++k)
      largest = sizes[start + k] > largest ? sizes[start + k] : largest;
    dim3 grid(static_cast<unsigned>(Blocks(largest) < 1024 ? Blocks(largest) : 1024), count);
    launch(start, count, grid);
    AMP_RETURN_IF_ERROR(CheckLaunch(what));
  }
  return Status::Ok();
}

}  // namespace

Status UnscaleCheck(int n_tensors, const float* const* grads, float* const* out,
                    const int64_t* sizes, const float* inv_scale, bool invert_scale,
                    bool* found_inf, void* stream) {
  auto st = static_cast<cudaStream_t>(stream);
  cudaError_t err = cudaMemsetAsync(found_inf, 0, 1, st);
  if (err != cudaSuccess) return Internal("UnscaleCheck: CUDA error: ", cudaGetErrorString(err));
  return ForEachChunk(n_tensors, sizes, "UnscaleCheck", [&](int start, int count, dim3 grid) {
    UnscaleTensors t{};
    for (int k = 0; k < count; ++k) {
      t.g[k] = grads[start + k];
      t.out[k] = out[start + k];
      t.n[k] = sizes[start + k];
    }
    UnscaleCheckKernel<<<grid, kThreads, 0, st>>>(t, inv_scale, invert_scale, found_inf);
  });
}

Status FusedAdam(int n_tensors, const float* const* p, const float* const* g, const float* const* m,
                 const float* const* v, float* const* out_p, float* const* out_m,
                 float* const* out_v, const int64_t* sizes, const float* lr, const float* step,
                 const bool* skip, float beta1, float beta2, float eps, float weight_decay,
                 bool decoupled, void* stream) {
  float omb1 = static_cast<float>(1.0 - static_cast<double>(beta1));
  float omb2 = static_cast<float>(1.0 - static_cast<double>(beta2));
  return ForEachChunk(n_tensors, sizes, "FusedAdam", [&](int start, int count, dim3 grid) {
    AdamTensors t{};
    for (int k = 0; k < count; ++k) {
      t.p[k] = p[start + k];
      t.g[k] = g[start + k];
      t.m[k] = m[start + k];
      t.v[k] = v[start + k];
      t.op[k] = out_p[start + k];
      t.om[k] = out_m[start + k];
      t.ov[k] = out_v[start + k];
      t.n[k] = sizes[start + k];
    }
    FusedAdamKernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        t, lr, step, skip, beta1, beta2, eps, weight_decay, decoupled, omb1, omb2);
  });
}

Status FusedSgd(int n_tensors, const float* const* p, const float* const* g,
                const float* const* buf, float* const* out_p, float* const* out_buf,
                const int64_t* sizes, const float* lr, const float* step, const bool* skip,
                float momentum, float dampening, bool nesterov, float weight_decay, void* stream) {
  float omd = static_cast<float>(1.0 - static_cast<double>(dampening));
  return ForEachChunk(n_tensors, sizes, "FusedSgd", [&](int start, int count, dim3 grid) {
    SgdTensors t{};
    for (int k = 0; k < count; ++k) {
      t.p[k] = p[start + k];
      t.g[k] = g[start + k];
      t.buf[k] = buf ? buf[start + k] : nullptr;
      t.op[k] = out_p[start + k];
      t.obuf[k] = out_buf ? out_buf[start + k] : nullptr;
      t.n[k] = sizes[start + k];
    }
    FusedSgdKernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        t, lr, step, skip, momentum, omd, dampening != 0, weight_decay, nesterov);
  });
}

}  // namespace amp::cuda
