// The CUDA kernel families' launchers (kernels/cuda/*.cu), callable from
// host C++ without CUDA headers. Tensors are type-erased (ONNX element type
// numbers); float16/bfloat16 are loaded into FP32, computed, and rounded once
// to nearest even, as the CPU kernels do. The runtime's CUDA backend
// (runtime/cuda_backend.cc) maps nodes onto these.
#pragma once

#include <cstdint>

#include "compiler/status.h"

namespace amp::cuda {

constexpr int kMaxRank = 8;

// Dims and per-operand strides (in elements; 0 on broadcast axes) of an
// output of rank <= kMaxRank, for up to 4 operands.
struct Strided {
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t strides[4][kMaxRank] = {};
};

struct DevPtr {
  const void* data = nullptr;
  int dtype = 0;  // ONNX TensorProto.DataType
};

enum class EwOp : int {
  // unary
  kIdentity,
  kCast,
  kAbs,
  kNeg,
  kRelu,
  kSqrt,
  kExp,
  kLog,
  kErf,
  kReciprocal,
  kTanh,
  kSigmoid,
  kSign,
  kCeil,
  kFloor,
  kSin,
  kCos,
  kLeakyRelu,
  kGelu,
  kGeluTanh,
  kSoftplus,
  kClip,
  kNot,
  kIsNaN,
  kIsInf,
  kRound,
  kElu,
  kHardSigmoid,
  kSoftsign,
  kHardSwish,
  kMish,
  kSelu,  // alpha, beta = gamma
  // binary
  kAdd,
  kSub,
  kMul,
  kDiv,
  kPow,
  kMax,
  kMin,
  kAnd,
  kOr,
  kXor,
  kPRelu,
  kMod,
  kFMod,
  kEqual,
  kGreater,
  kGreaterEq,
  kLess,
  kLessEq,
  // ternary
  kWhere,
};

// ai.amp FusedElementwise (ops/fused_elementwise.h): the program, lowered
// to opcodes, interpreted per element; registers are FP32 and every
// instruction rounds to its type, as the CPU interpreter does.
constexpr int kFusedMaxInputs = 16;
constexpr int kFusedMaxInstrs = 64;
struct FusedInstrDev {
  EwOp op = EwOp::kIdentity;
  int type = 1;  // ONNX element type of the result
  signed char args[3] = {-1, -1, -1};
  float alpha = 0, beta = 0;
};
struct FusedProgramDev {
  int n_in = 0, n_instr = 0, n_out = 0, rank = 0;
  int64_t dims[kMaxRank] = {};                      // the output shape
  int64_t strides[kFusedMaxInputs][kMaxRank] = {};  // per input (0: broadcast)
  DevPtr in[kFusedMaxInputs];
  void* out[kFusedMaxInstrs] = {};
  int out_dtype[kFusedMaxInstrs] = {};
  int out_reg[kFusedMaxInstrs] = {};
  FusedInstrDev instrs[kFusedMaxInstrs];
};
// The opcode of a fusable op (Gelu's tanh form when tanh_form), or false.
bool FusedOpCode(const char* op, bool tanh_form, EwOp* code);
Status FusedElementwise(const FusedProgramDev& program, void* stream);

// ai.amp MultiCast: out[k] = in[k] cast to out_dtype, for n tensors (host
// arrays of device pointers), in launches of up to 64 tensors.
Status MultiCast(int n_tensors, const DevPtr* in, void* const* out, const int64_t* sizes,
                 int out_dtype, void* stream);

// out[i] = op(in0[...], in1[...], in2[...]) over `s` (broadcast strides per
// input); alpha/beta carry attributes (LeakyRelu alpha, Clip bounds, IsInf's
// detect flags). Sum/Mean/Max/Min of up to 4 inputs: `EwVariadic`.
Status Elementwise(EwOp op, const DevPtr* in, int n_in, void* out, int out_dtype, const Strided& s,
                   float alpha, float beta, void* stream);
// kind: 0 sum, 1 mean (divides by `divide_by`), 2 max, 3 min.
Status EwVariadic(int kind, const DevPtr* in, int n_in, void* out, int out_dtype, const Strided& s,
                  float divide_by, void* stream);

// out (dims of s, contiguous) <- in at strides s.strides[0] from element
// `in_offset`; every element `width` bytes. Transpose, Slice, Expand, and
// (with out_strides) Concat/Split pieces.
Status StridedCopy(const void* in, int64_t in_offset, void* out, const Strided& s, int width,
                   const int64_t* out_strides, int64_t out_offset, void* stream);

// Reductions of float tensors: out[o] over the axes where reduce_mask is set.
// kind: 0 sum, 1 mean, 2 max, 3 min, 4 sum of squares, 5 L1, 6 L2, 7 prod,
// 8 log-sum, 9 log-sum-exp.
Status Reduce(int kind, DevPtr in, const int64_t* dims, int rank, const bool* reduce_mask,
              void* out, int out_dtype, void* stream);
// Softmax (0), LogSoftmax (1) over the middle dim of [outer, n, inner].
Status Softmax(int kind, DevPtr in, void* out, int out_dtype, int64_t outer, int64_t n,
               int64_t inner, void* stream);
// LayerNormalization over the last `n` elements of each of `rows` rows;
// scale/bias broadcast over those n (bias may be null); mean/inv_std may be null.
Status LayerNorm(DevPtr x, DevPtr scale, DevPtr bias, void* y, int y_dtype, void* mean,
                 void* inv_std, int stat_dtype, int64_t rows, int64_t n, float epsilon,
                 void* stream);
// ai.amp NormalizeGrad: LayerNorm's or BatchNorm's backward over the
// reduced dims of x (FP32; xhat may be null).
struct NormGroups {
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t strides[kMaxRank] = {};
  bool reduced[kMaxRank] = {};
};
Status NormalizeGrad(const float* x, const float* dxhat, float* dx, float* xhat,
                     const NormGroups& groups, float eps, void* stream);
// ai.amp LayerNormGrad over the last n elements of each of `rows` rows
// (FP32): dx (+ addend, may be null), the scale's and bias's gradients and
// dx's column sums (each may be null), dx's copy in copy_dtype (may be
// null); `stats` is device scratch of 2 floats per row.
struct LayerNormGradArgs {
  const float *x = nullptr, *dy = nullptr, *scale = nullptr, *addend = nullptr;
  float *dx = nullptr, *dscale = nullptr, *dbias = nullptr, *dx_sum = nullptr;
  void* copy = nullptr;
  int copy_dtype = 1;
  float* stats = nullptr;
  int64_t rows = 0, n = 0;
  float eps = 1e-5f;
};
Status LayerNormGrad(const LayerNormGradArgs& args, void* stream);
// ai.amp BatchNormGrad over [n, c, spatial]: x and dy of any float type,
// C FP32 scales; dx of dx_dtype, dscale and dbias [c] FP32 (may be null).
Status BatchNormGrad(DevPtr x, DevPtr dy, const float* scale, void* dx, int dx_dtype, float* dscale,
                     float* dbias, int64_t n, int64_t c, int64_t spatial, float eps, void* stream);
// ai.amp SoftmaxCrossEntropyGrad: dx = (softmax(x) - onehot(labels)) * scale
// over [n, c] FP32 rows (scale one value, or one per row), and its copy in
// half_dtype when dx_half is not null.
Status SoftmaxCrossEntropyGrad(const float* x, DevPtr labels, const float* scale, bool per_row,
                               float* dx, void* dx_half, int half_dtype, int64_t n, int64_t c,
                               void* stream);
// ai.amp SoftmaxCrossEntropy: the loss (reduction 1 sum, 2 mean; ignore_index
// when has_ignore) of [n, c] logits of any float type and its gradient
// (softmax(x) - onehot(labels)) * scale / divisor in FP32, with its copy in
// half_dtype when dx_half is not null; one launch.
Status SoftmaxCrossEntropy(DevPtr x, DevPtr labels, const float* scale, bool per_row, float divisor,
                           float* loss, float* dx, void* dx_half, int half_dtype, int64_t n,
                           int64_t c, int reduction, bool has_ignore, int64_t ignore_index,
                           void* stream);
// SoftmaxCrossEntropyLoss (log_softmax = false: NegativeLogLikelihoodLoss) on
// scores [N, C, D]; reduction 0 none, 1 sum, 2 mean; weight and log_prob may
// be null.
Status CrossEntropy(bool log_softmax, DevPtr scores, DevPtr labels, DevPtr weight, void* loss,
                    int loss_dtype, void* log_prob, int64_t n, int64_t c, int64_t d, int reduction,
                    bool has_ignore, int64_t ignore_index, void* stream);

// Gather along an axis: data [outer, n, inner] (bytes per element `width`),
// indices (any integer type, count `ni`) -> out [outer, ni, inner].
Status Gather(const void* data, DevPtr indices, int64_t ni, void* out, int64_t outer, int64_t n,
              int64_t inner, int width, void* stream);
// ScatterND with reduction 0 none / 1 add (out already holds data).
Status ScatterND(void* out, int dtype, const int64_t* data_dims, int data_rank, DevPtr indices,
                 int64_t n_updates, int k, const void* updates, int reduction, void* stream);
// ScatterElements (out already holds data); idx dims/strides describe indices.
Status ScatterElements(void* out, int dtype, const int64_t* data_dims, int rank, int axis,
                       DevPtr indices, const int64_t* idx_dims, const void* updates, int reduction,
                       void* stream);
// OneHot: out [outer, depth, inner]; values = {off, on} (device, out type).
Status OneHot(DevPtr indices, const void* values, void* out, int width, int64_t outer,
              int64_t depth, int64_t inner, void* stream);
// Fills n elements of `width` bytes with `value` (host bytes).
Status Fill(void* out, int64_t n, const void* value, int width, void* stream);
// Dropout with amp's counter-based generator (the CPU kernel's, bit for bit).
Status Dropout(DevPtr x, void* y, bool* mask, int64_t n, float ratio, uint64_t seed, uint64_t step,
               void* stream);

// ai.amp FusedSgd: PyTorch's SGD (weight decay, momentum with dampening,
// Nesterov) over n FP32 tensors; buf and out_buf null without momentum.
Status FusedSgd(int n_tensors, const float* const* p, const float* const* g,
                const float* const* buf, float* const* out_p, float* const* out_buf,
                const int64_t* sizes, const float* lr, const float* step, const bool* skip,
                float momentum, float dampening, bool nesterov, float weight_decay, void* stream);
// ai.amp LossScaleUpdate: GradScaler's update of the scale and growth
// tracker from the found-inf flag, and of the optimizer's step count when
// step is not null (device scalars; outputs may alias inputs).
struct LossScaleRule {
  float growth_factor = 2.0f, backoff_factor = 0.5f;
  int64_t growth_interval = 2000;
  float min_scale = 0.0f, max_scale = 0.0f;  // 0: no clamp
};
Status LossScaleUpdate(const float* scale, const int64_t* tracker, const bool* found_inf,
                       const float* step, float* scale_out, int64_t* tracker_out, float* step_out,
                       const LossScaleRule& rule, void* stream);
// ai.amp UnscaleCheck: out[k] = grads[k] * (*inv_scale) for every FP32
// gradient (1 / *inv_scale with invert_scale), and *found_inf = whether any
// result is not finite (device flag).
Status UnscaleCheck(int n_tensors, const float* const* grads, float* const* out,
                    const int64_t* sizes, const float* inv_scale, bool invert_scale,
                    bool* found_inf, void* stream);

// ai.amp FusedAdam over n_tensors FP32 parameters (pointer arrays on the
// host; lr, step and skip are device scalars, skip may be null).
Status FusedAdam(int n_tensors, const float* const* p, const float* const* g, const float* const* m,
                 const float* const* v, float* const* out_p, float* const* out_m,
                 float* const* out_v, const int64_t* sizes, const float* lr, const float* step,
                 const bool* skip, float beta1, float beta2, float eps, float weight_decay,
                 bool decoupled, void* stream);

// ai.amp Attention and AttentionGrad (ops/attention.cc) over `slices`
// [Sq, Sk] attentions, each operand a strided view (ops/attention.h's
// layout): element (slice b, row r, col c) at offset + the batch strides of
// b's index + r * row + c * col. Rows are queries (q, O, dO, dq) or keys
// (k, v, dk, dv); columns the head dims. The mask (data null: none) at
// mask_batch_strides over the batch dims and mask_si, mask_sj over the
// scores' rows and columns. Heads of up to kAttentionMaxHead dims.
// AttentionGrad's `stats` is device scratch of 3 floats per query row.
constexpr int kAttentionMaxHead = 128;
struct AttentionView {
  int64_t offset = 0;
  int64_t batch_strides[kMaxRank] = {};
  int64_t row = 0, col = 0;
};
struct AttentionShape {
  int64_t slices = 1, sq = 0, sk = 0, d = 0, dv = 0;
  float alpha = 1, grad_alpha = 1;
  int batch_rank = 0;
  int64_t batch_dims[kMaxRank] = {};
  int64_t mask_batch_strides[kMaxRank] = {};
  int64_t mask_si = 0, mask_sj = 0;
  AttentionView q, k, v, o, dout, dq, dk, dv_;
};
// `stats` (or null): each query row's logsumexp of its scores, [slices * Sq].
Status Attention(const AttentionShape& s, DevPtr q, DevPtr k, DevPtr v, DevPtr mask, void* out,
                 int out_dtype, float* stats, void* stream);
Status AttentionGrad(const AttentionShape& s, DevPtr q, DevPtr k, DevPtr v, DevPtr dout,
                     DevPtr mask, void* dq, int dq_dtype, void* dk, int dk_dtype, void* dv,
                     int dv_dtype, float* stats, void* stream);

// C[m,n] = alpha op(A) op(B) + beta C through cuBLASLt, row-major, FP32
// accumulation; A and B of one float type (dtype), C of c_dtype. `batch` matrices at the strides
// given (elements). `handle` is a cublasLtHandle_t, `workspace` device memory.
Status Gemm(void* handle, void* workspace, size_t workspace_bytes, bool trans_a, bool trans_b,
            int64_t m, int64_t n, int64_t k, float alpha, const void* a, const void* b, float beta,
            void* c, int dtype, int c_dtype, int64_t batch, int64_t stride_a, int64_t stride_b,
            int64_t stride_c, void* stream);
// ai.amp MatMulT's epilogue (ops/gemm.cc), in the GEMM's kernel: a bias [n]
// of c_dtype added to every row, then ReLU; or the bias gradient of c_dtype,
// the sums over k of op(A) ([m]) or of op(B) ([n]) (cuBLASLt's BIAS, RELU,
// RELU_BIAS, BGRADB and BGRADA). Unimplemented when cuBLASLt has no kernel
// for that epilogue (or a bias gradient with a bias or ReLU): the caller
// runs the steps apart.
// relu_mask_out (with relu) also writes the ReLU's bit mask, relu_mask_in
// applies one to the product (DRELU): bit j of row i at bit i * ld + j,
// ld = n rounded up to 128 (cuBLASLt's RELU_AUX layout).
struct GemmEpilogue {
  const void* bias = nullptr;
  bool relu = false;
  void* bias_grad = nullptr;
  bool bias_grad_of_b = false;
  void* relu_mask_out = nullptr;
  const void* relu_mask_in = nullptr;
};
// The same mask from a stored [rows, n] result (its elements > 0), and its
// application to one (elements whose bit is clear become 0): the steps
// apart, where cuBLASLt has no kernel for the epilogue.
Status ReluMask(const void* y, int dtype, int64_t rows, int64_t n, void* mask, void* stream);
Status ApplyReluMask(void* y, int dtype, const void* mask, int64_t rows, int64_t n, void* stream);
Status Gemm(void* handle, void* workspace, size_t workspace_bytes, bool trans_a, bool trans_b,
            int64_t m, int64_t n, int64_t k, float alpha, const void* a, const void* b, float beta,
            void* c, int dtype, int c_dtype, int64_t batch, int64_t stride_a, int64_t stride_b,
            int64_t stride_c, void* stream, const GemmEpilogue& epilogue);

}  // namespace amp::cuda
