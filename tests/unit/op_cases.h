// Small graphs, one or a few ops each, that the backend tests run on random
// inputs: cuda_backend_test compares CUDA with the CPU, cpu_kernel_test
// compares the CPU's fp32/fp16/bf16 kernels with the same graph in float64.
#pragma once

#include <cmath>
#include <ostream>
#include <random>
#include <string>

#include "compiler/ir.h"

namespace amp {

struct Case {
  const char* name;
  const char* text;  // ONNX text; inputs are random, initializers fixed
  int opset = 18;    // of the default domain (Gelu exists from 20)
};

// The graphs; inputs named x*, drawn in [-2, 2] (positive with "pos" in the
// name), labels named "labels" in [0, 5).
inline const Case kCases[] = {
    {"add_broadcast_f32",
     R"(g (float[3,4,5] x, float[4,1] x2) => (float[3,4,5] y) { y = Add (x, x2) })"},
    {"sub_mul_div_f16", R"(g (float16[6,7] x, float16[7] x2) => (float16[6,7] y) {
       a = Sub (x, x2)
       b = Mul (a, x2)
       y = Div (b, x2) })"},
    {"pow_max_min_sum_bf16",
     R"(g (bfloat16[5,3] x, bfloat16[5,3] x2, bfloat16[3] x3) => (bfloat16[5,3] y) {
       two32 = Constant <value = float {2.0}> ()
       two = Cast <to = 16> (two32)
       a = Pow (x, two)
       b = Max (a, x2, x3)
       c = Min (b, x3)
       y = Sum (a, b, c, x, x2) })"},
    {"compare_where", R"(g (float[4,6] x, float[6] x2) => (float[4,6] y, bool[4,6] eq) {
       gt = Greater (x, x2)
       lt = Less (x, x2)
       ge = GreaterOrEqual (x, x2)
       eq = Equal (gt, lt)
       both = And (ge, gt)
       y = Where (both, x, x2) })"},
    {"unary_f32",
     R"(g (float[64] x, float[64] xpos) => (float[64] a, float[64] b, float[64] c, float[64] d, float[64] e, float[64] f, float[64] h, float[64] k) {
       a = Relu (x)
       b = Sqrt (xpos)
       c = Exp (x)
       d = Log (xpos)
       e = Erf (x)
       f = Tanh (x)
       h = Sigmoid (x)
       k = Reciprocal (xpos) })"},
    {"unary_f16",
     R"(g (float16[7,9] x) => (float16[7,9] a, float16[7,9] b, float16[7,9] c, float16[7,9] d, bool[7,9] e, bool[7,9] f) {
       a = Gelu (x)
       b = LeakyRelu <alpha = 0.1> (x)
       c = Neg (x)
       d = Abs (x)
       e = IsNaN (x)
       f = IsInf (x) })",
     20},
    {"casts",
     R"(g (float[33] x, int64[33] xi) => (float16[33] a, bfloat16[33] b, float[33] c, int64[33] d, float[33] e) {
       a = Cast <to = 10> (x)
       b = Cast <to = 16> (x)
       c = Cast <to = 1> (a)
       d = Cast <to = 7> (x)
       e = Cast <to = 1> (xi) })"},
    {"clip", R"(g (float[50] x) => (float[50] y) {
       lo = Constant <value = float {-0.5}> ()
       hi = Constant <value = float {0.75}> ()
       y = Clip (x, lo, hi) })"},
    {"transpose_slice_expand",
     R"(g (float16[2,3,4,5] x, float[3,1] x2) => (float16[4,2,5,3] t, float16[2,3,2,2] s, float[2,3,6] e) {
       t = Transpose <perm = [2, 0, 3, 1]> (x)
       starts = Constant <value = int64[2] {1, 4}> ()
       ends = Constant <value = int64[2] {4, 0}> ()
       axes = Constant <value = int64[2] {2, 3}> ()
       steps = Constant <value = int64[2] {2, -2}> ()
       s = Slice (x, starts, ends, axes, steps)
       shape = Constant <value = int64[3] {2, 3, 6}> ()
       e = Expand (x2, shape) })"},
    {"concat_split_reshape",
     R"(g (float[2,3,4] x, float[2,5,4] x2) => (float[2,3,4] a, float[2,5,4] b, float[16,4] r)
       <int64[2] sizes = {3, 5}> {
       c = Concat <axis = 1> (x, x2)
       a, b = Split <axis = 1> (c, sizes)
       shape = Constant <value = int64[2] {16, 4}> ()
       r = Reshape (c, shape) })"},
    {"gather_scatter_onehot",
     R"(g (float[5,4] x, float[2,4] x2, int64[6] labels) => (float[5,3] a, float[5,4] b, float[5,4] c, float[6,5] d)
       <int64[3] idx = {3, 0, -1}, int64[2,1] nd = {4, 1}, int64[2,4] el = {0, 1, 2, 3, 4, 3, 1, 0}> {
       a = Gather <axis = 1> (x, idx)
       b = ScatterND (x, nd, x2)
       c = ScatterElements <axis = 0> (x, el, x2)
       values = Constant <value = float[2] {0.0, 1.0}> ()
       depth = Constant <value = int64 {5}> ()
       d = OneHot (labels, depth, values) })"},
    {"reductions",
     R"(g (float[4,5,6] x) => (float[4,1,6] a, float[5] b, float[4,5,1] c, float[] d) {
       ax1 = Constant <value = int64[1] {1}> ()
       ax02 = Constant <value = int64[2] {0, 2}> ()
       axl = Constant <value = int64[1] {-1}> ()
       a = ReduceSum (x, ax1)
       b = ReduceMean <keepdims = 0> (x, ax02)
       c = ReduceMax (x, axl)
       d = ReduceSumSquare <keepdims = 0> (x) })"},
    {"softmax_layernorm_f16",
     R"(g (float16[3,4,8] x, float16[8] x2, float16[8] x3) => (float16[3,4,8] a, float16[3,4,8] b, float16[3,4,8] c, float16[3,4,8] y, float[3,4,1] m, float[3,4,1] r) {
       a = Softmax (x)
       b = LogSoftmax <axis = 1> (x)
       c = Softmax <axis = 0> (x)
       y, m, r = LayerNormalization <axis = -1, epsilon = 0.00001, stash_type = 1> (x, x2, x3) })"},
    {"cross_entropy",
     R"(g (float[6,5] x, int64[6] labels) => (float[] loss, float[6,5] logp, float[] nll, float[6] each) {
       loss, logp = SoftmaxCrossEntropyLoss <reduction = "mean"> (x, labels)
       nll = NegativeLogLikelihoodLoss <reduction = "sum"> (x, labels)
       each = SoftmaxCrossEntropyLoss <reduction = "none", ignore_index = 2> (x, labels) })"},
    {"gemm_f32", R"(g (float[7,5] x, float[6,5] x2, float[6] x3) => (float[7,6] y) {
       y = Gemm <transB = 1, alpha = 0.5, beta = 2.0> (x, x2, x3) })"},
    {"gemm_f16_transA",
     R"(g (float16[5,7] x, float16[5,6] x2, float16[7,6] x3) => (float16[7,6] y) {
       y = Gemm <transA = 1> (x, x2, x3) })"},
    {"matmul_batched_f16",
     R"(g (float16[2,3,4,5] x, float16[2,3,5,6] x2) => (float16[2,3,4,6] y) { y = MatMul (x, x2) })"},
    {"matmul_weights_bf16",
     R"(g (bfloat16[2,7,5] x, bfloat16[5,3] x2) => (bfloat16[2,7,3] y) { y = MatMul (x, x2) })"},
    // Transposes of the last two axes that specialization folds into the
    // GEMM's flags (transpose-folding: ai.amp MatMulT), batched and weights.
    {"matmul_t_batched_f16",
     R"(g (float16[2,5,4] x, float16[2,6,5] x2) => (float16[2,4,6] y) {
       t = Transpose <perm = [0, 2, 1]> (x)
       t2 = Transpose <perm = [0, 2, 1]> (x2)
       y = MatMul (t, t2) })"},
    {"matmul_t_weights_f32",
     R"(g (float[3,5,4] x, float[6,5] x2) => (float[3,4,6] y) {
       t = Transpose <perm = [0, 2, 1]> (x)
       t2 = Transpose <perm = [1, 0]> (x2)
       y = MatMul (t, t2) })"},
    {"matmul_f32_shared_lhs",
     R"(g (float[4,5] x, float[3,5,6] x2) => (float[3,4,6] y) { y = MatMul (x, x2) })"},
    {"fused_adam",
     R"(g (float xpos_lr, float xpos_step, float[300] p, float[7,5] p2, float[300] g, float[7,5] g2, float[300] m, float[7,5] m2, float[300] vpos, float[7,5] vpos2) => (float[300] a, float[7,5] b, float[300] c, float[7,5] d, float[300] e, float[7,5] f) {
       skip = Constant <value = bool {0}> ()
       a, b, c, d, e, f = ai.amp.FusedAdam <beta1 = 0.9, beta2 = 0.999, eps = 0.00000001, weight_decay = 0.01, decoupled = 1> (xpos_lr, xpos_step, skip, p, p2, g, g2, m, m2, vpos, vpos2) })"},
    {"unscale_check",
     R"(g (float xpos, float[300] x, float[7,5] x2) => (float[300] a, float[7,5] b, bool found) {
       a, b, found = ai.amp.UnscaleCheck (xpos, x, x2) })"},
    // The fused kernels of fuse-attention and fuse-norm-grad (their float64
    // checks: fusion_test.cc's FusedKernelsTest; here the CUDA backend
    // against the CPU).
    {"attention_f16_mask",
     R"(g (float16[2,3,6,8] x, float16[2,3,5,8] x2, float16[2,3,5,4] x3, float[2,1,1,5] x4) => (float16[2,3,6,4] y) {
       y = ai.amp.Attention <alpha = 0.35, transB = 1> (x, x2, x3, x4) })"},
    {"attention_grad_f16",
     R"(g (float16[2,6,8] x, float16[2,8,5] x2, float16[2,5,4] x3, float16[2,6,4] x4) => (float16[2,6,8] dq, float16[2,8,5] dk, float16[2,5,4] dv) {
       dq, dk, dv = ai.amp.AttentionGrad <alpha = 0.5, grad_alpha = 0.5, transB = 0, dk_trans = 1> (x, x2, x3, x4) })"},
    // With the softmax statistics, and a backward that reads them and O
    // (link-attention-stats).
    {"attention_stats_f16_mask",
     R"(g (float16[2,3,6,8] x, float16[2,3,5,8] x2, float16[2,3,5,4] x3, float[2,1,1,5] x4, float16[2,3,6,4] x5) => (float16[2,3,6,4] y, float[2,3,6] st, float16[2,3,6,8] dq, float16[2,3,5,8] dk, float16[2,3,5,4] dv) {
       y, st = ai.amp.Attention <alpha = 0.35, transB = 1> (x, x2, x3, x4)
       dq, dk, dv = ai.amp.AttentionGrad <alpha = 0.35, grad_alpha = 0.35, transB = 1> (x, x2, x3, x5, x4, y, st) })"},
    // The view form (fold-attention-views): q, k, v column blocks of one
    // tensor (two columns read by none), O into columns 1-4 of its output,
    // the gradients packed (the uncovered columns zero).
    {"attention_views_f16",
     R"(g (float16[2,5,14] x, float16[2,5,4] x2) => (float16[2,5,6] o, float16[2,5,14] dx) {
       o = ai.amp.Attention <alpha = 0.5, dims = [2, 5, 5, 4, 4], out_shapes = [3, 2, 5, 6], views = [0, 70, 14, 1, 4, 70, 14, 1, 8, 70, 14, 1, 1, 30, 6, 1]> (x, x, x)
       dx = ai.amp.AttentionGrad <alpha = 0.5, grad_alpha = 0.5, dims = [2, 5, 5, 4, 4], out_shapes = [3, 2, 5, 14], views = [0, 70, 14, 1, 4, 70, 14, 1, 8, 70, 14, 1, 0, 20, 4, 1, 0, 70, 14, 1, 4, 70, 14, 1, 8, 70, 14, 1]> (x, x, x, x2) })"},
    {"attention_stats_views_f16",
     R"(g (float16[2,5,14] x, float16[2,5,4] x2) => (float16[2,5,6] o, float[2,5] st, float16[2,5,14] dx) {
       o, st = ai.amp.Attention <alpha = 0.5, dims = [2, 5, 5, 4, 4], out_shapes = [3, 2, 5, 6], views = [0, 70, 14, 1, 4, 70, 14, 1, 8, 70, 14, 1, 1, 30, 6, 1]> (x, x, x)
       dx = ai.amp.AttentionGrad <alpha = 0.5, grad_alpha = 0.5, dims = [2, 5, 5, 4, 4], out_shapes = [3, 2, 5, 14], views = [0, 70, 14, 1, 4, 70, 14, 1, 8, 70, 14, 1, 0, 20, 4, 1, 0, 70, 14, 1, 4, 70, 14, 1, 8, 70, 14, 1, 1, 30, 6, 1]> (x, x, x, x2, , o, st) })"},
    // What cuDNN's fused attention runs on a GPU (CudnnAttentionLayoutOf;
    // fusion_test.cc checks that it fits): the benchmark Transformer's
    // layout - heads of a sequence-first packed QKV tensor [S, B, 3 * H * D],
    // O into [S * B, H * D], the gradients packed - with a float16 mask.
    {"attention_cudnn_f16",
     R"(g (float16[16,2,96] x, float16[32,32] x2, float16[16,16] x3) => (float16[32,32] o, float[2,2,16] st, float16[16,2,96] dx) {
       o, st = ai.amp.Attention <alpha = 0.25, dims = [2, 2, 16, 16, 16, 16], out_shapes = [2, 32, 32], views = [0, 96, 16, 192, 1, 32, 96, 16, 192, 1, 64, 96, 16, 192, 1, 0, 32, 16, 64, 1]> (x, x, x, x3)
       dx = ai.amp.AttentionGrad <alpha = 0.25, grad_alpha = 0.25, dims = [2, 2, 16, 16, 16, 16], out_shapes = [3, 16, 2, 96], views = [0, 96, 16, 192, 1, 32, 96, 16, 192, 1, 64, 96, 16, 192, 1, 0, 32, 16, 64, 1, 0, 96, 16, 192, 1, 32, 96, 16, 192, 1, 64, 96, 16, 192, 1, 0, 32, 16, 64, 1]> (x, x, x, x2, x3, o, st) })"},
    {"layer_norm_grad",
     R"(g (float[6,16] x, float[6,16] x2, float[16] x3, float[6,16] x4) => (float[6,16] dx, float[16] dw, float[16] db) {
       dx, dw, db = ai.amp.LayerNormGrad <axis = 1, epsilon = 0.001> (x, x2, x3, x4) })"},
    // With dx's column sums (a bias's gradient) and its half copy.
    {"layer_norm_grad_sums_copy_f16",
     R"(g (float[6,16] x, float[6,16] x2, float[16] x3) => (float[6,16] dx, float[16] dw, float[16] db, float[16] ds, float16[6,16] dh) {
       dx, dw, db, ds, dh = ai.amp.LayerNormGrad <axis = 1, copy_type = 10, epsilon = 0.001> (x, x2, x3) })"},
    {"layer_norm_half_out",
     R"(g (float[6,16] x, float[16] x2, float[16] x3) => (float16[6,16] y) {
       y = ai.amp.LayerNormalization <axis = -1, epsilon = 0.001, y_type = 10> (x, x2, x3) })"},
    {"batch_norm_grad_f16",
     R"(g (float16[2,3,4,5] x, float16[2,3,4,5] x2, float[3] x3) => (float16[2,3,4,5] dx, float[3] dw, float[3] db) {
       dx, dw, db = ai.amp.BatchNormGrad <epsilon = 0.001> (x, x2, x3) })"},
    // ai.amp MatMulT's epilogues (cuBLASLt's RELU_BIAS and BGRADA/BGRADB on
    // CUDA, else the steps apart).
    {"matmul_bias_relu_f16",
     R"(g (float16[6,8] x, float16[5,8] x2, float16[5] x3) => (float16[6,5] y) {
       y = ai.amp.MatMulT <activation = "relu", transB = 1> (x, x2, x3) })"},
    {"matmul_bias_grad_a_f16",
     R"(g (float16[6,5] x, float16[6,8] x2) => (float[5,8] dw, float[5] db) {
       dw, db = ai.amp.MatMulT <bias_grad = "A", out_type = 1, transA = 1> (x, x2) })"},
    {"matmul_bias_grad_b",
     R"(g (float[6,8] x, float[6,5] x2) => (float[8,5] dw, float[5] db) {
       dw, db = ai.amp.MatMulT <bias_grad = "B", transA = 1> (x, x2) })"},
    {"softmax_cross_entropy_grad",
     R"(g (float[6,10] x, float[6,1] x2) => (float[6,10] dx, float16[6,10] dx16) <int64[6] labels_c = {0, 9, 3, -1, 4, 100}> {
       dx, dx16 = ai.amp.SoftmaxCrossEntropyGrad <half_type = 10> (x, labels_c, x2) })"},
    {"softmax_cross_entropy_f16",
     R"(g (float16[6,10] x, float x2) => (float loss, float[6,10] dx, float16[6,10] dx16) <int64[6] labels_c = {0, 9, 3, -100, 4, 7}> {
       loss, dx, dx16 = ai.amp.SoftmaxCrossEntropy <half_type = 10, ignore_index = -100, scale_divisor = 5.0> (x, labels_c, x2) })"},
    {"loss_scale_update_grow",
     R"(g (float xpos) => (float s, int64 t) <int64 tr = {1999}, bool f = {0}> {
       s, t = ai.amp.LossScaleUpdate <growth_interval = 2000, growth_factor = 2.0, backoff_factor = 0.5, max_scale = 3.0> (xpos, tr, f) })"},
    {"loss_scale_update_step",
     R"(g (float xpos) => (float s, int64 t, float n) <int64 tr = {7}, bool f = {1}, float n0 = {41.0}> {
       s, t, n = ai.amp.LossScaleUpdate <growth_interval = 2000> (xpos, tr, f, n0) })"},
    {"unscale_check_invert",
     R"(g (float xpos, float[5,3] x) => (float[5,3] u, bool found) {
       u, found = ai.amp.UnscaleCheck <invert_scale = 1> (xpos, x) })"},
    {"dropout_mask", R"(g (float[1000] x) => (float[1000] y, bool[1000] mask) {
       ratio = Constant <value = float {0.3}> ()
       train = Constant <value = bool {1}> ()
       y, mask = Dropout <seed = 17> (x, ratio, train) })"},
};

inline void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// Random data for input `v` (see the naming rules above kCases).
inline Tensor Random(const Value& v, std::mt19937& rng) {
  std::vector<int64_t> dims = *StaticDims(*v.type().shape);
  Tensor t(v.dtype(), dims);
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    if (v.name() == "labels")
      t.SetDouble(i, static_cast<double>(rng() % 5));
    else if (v.name().find("pos") != std::string::npos)
      t.SetDouble(i, 0.1 + std::abs(u(rng)));
    else
      t.SetDouble(i, u(rng));
  }
  return t;
}
}  // namespace amp
