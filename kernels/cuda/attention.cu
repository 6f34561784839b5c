// ai.amp Attention and AttentionGrad (fuse-attention; semantics in
// ops/attention.cc): one thread per query row for the forward and for dq
// (with the row's softmax statistics), one thread per key row for dk and dv,
// so that nothing is accumulated across threads (no atomics: deterministic)
// and no [Sq, Sk] tensor is written. The threads of a warp walk the same
// keys (or queries) in step, so those reads are broadcasts from the cache.
// FP32 arithmetic on the vector units (the cost model costs these at the
// vector rate); the probabilities are rounded to v's type before the
// product with v and dS to q's type, where the unfused step rounds them.
// Then the launchers.
#include "kernels/cuda/common.cuh"

namespace amp::cuda {
namespace {

__device__ inline float RoundTo(int dt, float x) {
  if (dt == kF16) return __half2float(__float2half_rn(x));
  if (dt == kBF16) return __bfloat162float(__float2bfloat16_rn(x));
  return x;
}

// Where slice b of a view (or of the mask, given its batch strides) starts.
__device__ inline int64_t SliceBase(const AttentionShape& s, const int64_t* strides, int64_t offset,
                                    int64_t b) {
  int64_t off = offset;
  for (int d = s.batch_rank - 1; d >= 0; --d) {
    off += (b % s.batch_dims[d]) * strides[d];
    b /= s.batch_dims[d];
  }
  return off;
}
__device__ inline int64_t Base(const AttentionShape& s, const AttentionView& v, int64_t b) {
  return SliceBase(s, v.batch_strides, v.offset, b);
}
__device__ inline int64_t MaskBase(const AttentionShape& s, int64_t b) {
  return SliceBase(s, s.mask_batch_strides, 0, b);
}
// Element (r, c) of a view's slice starting at `base`.
__device__ inline int64_t At(const AttentionView& v, int64_t base, int64_t r, int64_t c) {
  return base + r * v.row + c * v.col;
}

// The score of query i (its row loaded in q) and key j of the slice whose
// k starts at kbase.
__device__ inline float Score(const AttentionShape& s, const float* q, DevPtr k, DevPtr mask,
                              int64_t mbase, int64_t kbase, int64_t i, int64_t j) {
  float acc = 0;
  for (int64_t d = 0; d < s.d; ++d)
    acc = fmaf(q[d], LoadF(k.data, k.dtype, At(s.k, kbase, j, d)), acc);
  acc *= s.alpha;
  if (mask.data) acc += LoadF(mask.data, mask.dtype, mbase + i * s.mask_si + j * s.mask_sj);
  return acc;
}

// The running maximum and the sum of exp(score - maximum) over the keys.
__device__ inline void RowStats(const AttentionShape& s, const float* q, DevPtr k, DevPtr mask,
                                int64_t mbase, int64_t kbase, int64_t i, float* peak, float* sum) {
  float m = -INFINITY, l = 0;
  for (int64_t j = 0; j < s.sk; ++j) {
    float x = Score(s, q, k, mask, mbase, kbase, i, j);
    if (x > m) {
      l = (m == -INFINITY ? 0.f : l * expf(m - x)) + 1.f;
      m = x;
    } else if (m != -INFINITY) {
      l += expf(x - m);
    }
  }
  *peak = m;
  *sum = l;
}

__device__ inline float Prob(float x, float peak, float sum) {
  return peak == -INFINITY ? 0.f : expf(x - peak) / sum;
}

__global__ void AttentionKernel(AttentionShape s, DevPtr q, DevPtr k, DevPtr v, DevPtr mask,
                                void* out, int out_dt, float* stats) {
  AMP_GRID_LOOP(row, s.slices * s.sq) {
    int64_t b = row / s.sq, i = row % s.sq;
    const int64_t qb = Base(s, s.q, b), kb = Base(s, s.k, b), vb = Base(s, s.v, b),
                  ob = Base(s, s.o, b);
    float qr[kAttentionMaxHead], o[kAttentionMaxHead];
    for (int64_t d = 0; d < s.d; ++d) qr[d] = LoadF(q.data, q.dtype, At(s.q, qb, i, d));
    for (int64_t d = 0; d < s.dv; ++d) o[d] = 0;
    int64_t mbase = mask.data ? MaskBase(s, b) : 0;
    float peak, sum;
    RowStats(s, qr, k, mask, mbase, kb, i, &peak, &sum);
    for (int64_t j = 0; j < s.sk; ++j) {
      float p = RoundTo(v.dtype, Prob(Score(s, qr, k, mask, mbase, kb, i, j), peak, sum));
      for (int64_t d = 0; d < s.dv; ++d)
        o[d] = fmaf(p, LoadF(v.data, v.dtype, At(s.v, vb, j, d)), o[d]);
    }
    for (int64_t d = 0; d < s.dv; ++d) StoreF(out, out_dt, At(s.o, ob, i, d), o[d]);
    if (stats) stats[row] = peak == -INFINITY ? -INFINITY : peak + logf(sum);
  }
}

// Per query row: the softmax statistics (peak, sum) and r = rowsum(dP * P),
// kept in `stats` for the key-row kernel, and dq = g * dS . op(k)^T.
__global__ void AttentionGradQueryKernel(AttentionShape s, DevPtr q, DevPtr k, DevPtr v,
                                         DevPtr dout, DevPtr mask, void* dq, int dq_dt,
                                         float* stats) {
  AMP_GRID_LOOP(row, s.slices * s.sq) {
    int64_t b = row / s.sq, i = row % s.sq;
    const int64_t qb = Base(s, s.q, b), kb = Base(s, s.k, b), vb = Base(s, s.v, b),
                  dob = Base(s, s.dout, b), dqb = Base(s, s.dq, b);
    float qr[kAttentionMaxHead], dor[kAttentionMaxHead], acc[kAttentionMaxHead];
    for (int64_t d = 0; d < s.d; ++d) qr[d] = LoadF(q.data, q.dtype, At(s.q, qb, i, d));
    for (int64_t d = 0; d < s.dv; ++d) dor[d] = LoadF(dout.data, dout.dtype, At(s.dout, dob, i, d));
    int64_t mbase = mask.data ? MaskBase(s, b) : 0;
    float peak, sum;
    RowStats(s, qr, k, mask, mbase, kb, i, &peak, &sum);
    auto dp_at = [&](int64_t j) {
      float x = 0;
      for (int64_t d = 0; d < s.dv; ++d)
        x = fmaf(dor[d], LoadF(v.data, v.dtype, At(s.v, vb, j, d)), x);
      return x;
    };
    float r = 0;
    for (int64_t j = 0; j < s.sk; ++j)
      r += dp_at(j) * Prob(Score(s, qr, k, mask, mbase, kb, i, j), peak, sum);
    for (int64_t d = 0; d < s.d; ++d) acc[d] = 0;
    for (int64_t j = 0; j < s.sk; ++j) {
      float p = Prob(Score(s, qr, k, mask, mbase, kb, i, j), peak, sum);
      float ds = RoundTo(q.dtype, (dp_at(j) - r) * p);
      for (int64_t d = 0; d < s.d; ++d)
        acc[d] = fmaf(ds, LoadF(k.data, k.dtype, At(s.k, kb, j, d)), acc[d]);
    }
    for (int64_t d = 0; d < s.d; ++d) StoreF(dq, dq_dt, At(s.dq, dqb, i, d), s.grad_alpha * acc[d]);
    stats[row * 3 + 0] = peak;
    stats[row * 3 + 1] = sum;
    stats[row * 3 + 2] = r;
  }
}

// Per key row j: dv = round(P)^T . dO and dk = g * dS^T . q, walking the
// queries with the statistics the query kernel left.
__global__ void AttentionGradKeyKernel(AttentionShape s, DevPtr q, DevPtr k, DevPtr v, DevPtr dout,
                                       DevPtr mask, void* dk, int dk_dt, void* dv, int dv_dt,
                                       const float* stats) {
  AMP_GRID_LOOP(key, s.slices * s.sk) {
    int64_t b = key / s.sk, j = key % s.sk;
    const int64_t qb = Base(s, s.q, b), kb = Base(s, s.k, b), vb = Base(s, s.v, b),
                  dob = Base(s, s.dout, b), dkb = Base(s, s.dk, b), dvb = Base(s, s.dv_, b);
    float kr[kAttentionMaxHead], vr[kAttentionMaxHead], gk[kAttentionMaxHead],
        gv[kAttentionMaxHead];
    for (int64_t d = 0; d < s.d; ++d) {
      kr[d] = LoadF(k.data, k.dtype, At(s.k, kb, j, d));
      gk[d] = 0;
    }
    for (int64_t d = 0; d < s.dv; ++d) {
      vr[d] = LoadF(v.data, v.dtype, At(s.v, vb, j, d));
      gv[d] = 0;
    }
    int64_t mbase = mask.data ? MaskBase(s, b) : 0;
    for (int64_t i = 0; i < s.sq; ++i) {
      const int64_t row = b * s.sq + i;
      float x = 0;
      for (int64_t d = 0; d < s.d; ++d)
        x = fmaf(LoadF(q.data, q.dtype, At(s.q, qb, i, d)), kr[d], x);
      x *= s.alpha;
      if (mask.data) x += LoadF(mask.data, mask.dtype, mbase + i * s.mask_si + j * s.mask_sj);
      float p = Prob(x, stats[row * 3 + 0], stats[row * 3 + 1]);
      float p16 = RoundTo(v.dtype, p);
      float dp = 0;
      for (int64_t d = 0; d < s.dv; ++d) {
        float g = LoadF(dout.data, dout.dtype, At(s.dout, dob, i, d));
        dp = fmaf(g, vr[d], dp);
        gv[d] = fmaf(p16, g, gv[d]);
      }
      float ds = RoundTo(q.dtype, (dp - stats[row * 3 + 2]) * p);
      for (int64_t d = 0; d < s.d; ++d)
        gk[d] = fmaf(ds, LoadF(q.data, q.dtype, At(s.q, qb, i, d)), gk[d]);
    }
    for (int64_t d = 0; d < s.dv; ++d) StoreF(dv, dv_dt, At(s.dv_, dvb, j, d), gv[d]);
    for (int64_t d = 0; d < s.d; ++d) StoreF(dk, dk_dt, At(s.dk, dkb, j, d), s.grad_alpha * gk[d]);
  }
}

Status CheckShape(const AttentionShape& s) {
  if (s.d > kAttentionMaxHead || s.dv > kAttentionMaxHead)
    return Unimplemented("attention heads of ", s.d, " and ", s.dv,
                         " dims: the CUDA attention kernels take up to ", kAttentionMaxHead);
  if (s.batch_rank > kMaxRank) return Unimplemented("attention of batch rank ", s.batch_rank);
  return Status::Ok();
}

}  // namespace

Status Attention(const AttentionShape& s, DevPtr q, DevPtr k, DevPtr v, DevPtr mask, void* out,
                 int out_dtype, float* stats, void* stream) {
  AMP_RETURN_IF_ERROR(CheckShape(s));
  if (s.slices * s.sq == 0) return Status::Ok();
  AttentionKernel<<<Blocks(s.slices * s.sq), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      s, q, k, v, mask, out, out_dtype, stats);
  return CheckLaunch("Attention");
}

Status AttentionGrad(const AttentionShape& s, DevPtr q, DevPtr k, DevPtr v, DevPtr dout,
                     DevPtr mask, void* dq, int dq_dtype, void* dk, int dk_dtype, void* dv,
                     int dv_dtype, float* stats, void* stream) {
  AMP_RETURN_IF_ERROR(CheckShape(s));
  if (s.slices * (s.sq + s.sk) == 0) return Status::Ok();
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  AttentionGradQueryKernel<<<Blocks(s.slices * s.sq), kThreads, 0, st>>>(s, q, k, v, dout, mask, dq,
                                                                         dq_dtype, stats);
  AMP_RETURN_IF_ERROR(CheckLaunch("AttentionGrad (queries)"));
  AttentionGradKeyKernel<<<Blocks(s.slices * s.sk), kThreads, 0, st>>>(
      s, q, k, v, dout, mask, dk, dk_dtype, dv, dv_dtype, stats);
  return CheckLaunch("AttentionGrad (keys)");
}

}  // namespace amp::cuda
