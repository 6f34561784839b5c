// ai.amp Attention and AttentionGrad: where each operand of a node sits in
// the tensors it reads and writes, decoded once from the node (its plain
// form's shapes and flags, or the view form fold-attention-views writes),
// for shape inference and for both backends' kernels. The ops' semantics
// are in ops/attention.cc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/ir.h"
#include "compiler/kernel_attrs.h"
#include "compiler/status.h"

namespace amp {

// One operand: a [batch..., rows, cols] matrix stack inside tensor `tensor`
// (an input for q, k, v and dO, an output for O, dq, dk and dv): element
// (b..., r, c) is at offset + sum b_i * batch_strides[i] + r * row + c * col.
// Rows are queries (q, O, dO, dq) or keys (k, v, dk, dv); columns the head
// dims (D for q, k; Dv for v, O).
struct AttentionOperand {
  int tensor = 0;
  int64_t offset = 0;
  std::vector<int64_t> batch_strides;
  int64_t row = 0, col = 0;
};

enum AttentionOperandIndex : int {
  kAttnQ = 0,
  kAttnK,
  kAttnV,
  kAttnO,
  kAttnDO = 3,
  kAttnDQ,
  kAttnDK,
  kAttnDV,
  kAttnFwdO = 7  // AttentionGrad: the forward's O, when it reads it (input 5)
};

struct AttentionLayout {
  std::vector<int64_t> batch;  // the batch dims (heads, batch, ...)
  int64_t slices = 1, sq = 0, sk = 0, d = 0, dv = 0;
  // q, k, v, then O (Attention) or dO, dq, dk, dv [, the forward's O]
  // (AttentionGrad).
  std::vector<AttentionOperand> operands;
  std::vector<std::vector<int64_t>> out_shapes;  // per output (the stats' too)
  bool views = false;                            // the view form

  // The softmax statistics' shape: [batch..., Sq], FP32, contiguous.
  std::vector<int64_t> StatsShape() const;

  // Where slice `s` (row-major over the batch dims) of operand `o` starts.
  int64_t SliceOffset(const AttentionOperand& o, int64_t s) const;
};

// What the layout depends on of a node, from the IR (inference, passes) or
// from a kernel's decoded attributes.
struct AttentionAttrs {
  bool grad = false;  // AttentionGrad
  std::string describe;
  size_t num_outputs = 1;  // every output, the stats included
  bool stats = false;      // Attention: output 1 is the softmax statistics
  bool forward = false;    // AttentionGrad: inputs 5, 6 are the forward's O and statistics
  bool has_views = false;
  std::vector<int64_t> dims, views, out_shapes;
  int64_t trans_b = 1, dk_trans = 0;
  float alpha = 1, grad_alpha = 1;

  static AttentionAttrs Of(const Node& n);
  // `reads_forward`: the call has input 5 (AttentionGrad's forward O).
  static AttentionAttrs Of(const KernelAttrs& n, size_t num_outputs, bool reads_forward);
};

// The layout of `n` given its inputs' dims (q, k, v[, dO] at least; with
// `forward`, input 5's too, input 4's entry empty without a mask). Errors
// name the node: inconsistent dims, a view outside its tensor.
StatusOr<AttentionLayout> AttentionLayoutOf(const AttentionAttrs& n,
                                            const std::vector<std::vector<int64_t>>& input_dims);

// An attention as cuDNN's fused attention takes it: each operand a
// [b, h, rows, cols] tensor at `offset` elements into its tensor (`tensor`
// as in AttentionOperand), with strides, unit stride along the head dim;
// the mask an additive bias [b or 1, h or 1, Sq, Sk].
struct BhsdTensor {
  int tensor = 0;
  int64_t offset = 0;
  int64_t dims[4] = {1, 1, 1, 1};
  int64_t strides[4] = {1, 1, 1, 1};
};
struct CudnnAttentionLayout {
  int64_t b = 1, h = 1, sq = 0, sk = 0, d = 0, dv = 0;
  std::vector<BhsdTensor> operands;  // AttentionLayout's order
  bool has_bias = false;
  BhsdTensor bias;
  BhsdTensor stats;  // [b, h, Sq, 1] float32, contiguous
};
// The dtypes a node reads and writes (inputs and outputs in order; kUndefined
// where absent) and its mask's dims (null without one).
struct AttentionTypes {
  std::vector<DType> inputs, outputs;
  const std::vector<int64_t>* mask_dims = nullptr;
};
// Whether cuDNN's fused attention computes node `n` of layout `l` - half q,
// k, v (and every other operand of their type), head dims that are multiples
// of 8 up to 128, unit column strides, 16-byte aligned rows and slices,
// batch dims that fold into two, a mask of q's type that varies along the
// queries and, for the backward, the forward's O and stats
// (link-attention-stats) - and how; else an error that says why not. The
// CUDA backend runs cuDNN's kernels exactly where this succeeds, and the
// cost model costs those nodes at the matrix rate.
StatusOr<CudnnAttentionLayout> CudnnAttentionLayoutOf(const AttentionAttrs& n,
                                                      const AttentionLayout& l,
                                                      const AttentionTypes& types);
// The same from the IR (static shapes and types), for the cost model.
bool RunsAsCudnnAttention(const Node& n);

// For output `out` of a node in the view form: true when the views written
// into it cover every element once, false when some elements are in none
// (a kernel zeroes the output first); an error when two views overlap.
// Cheap for views of one layout at evenly spaced offsets (a packed QKV
// gradient), else one bit per element.
StatusOr<bool> AttentionOutputTiled(const AttentionAttrs& n, const AttentionLayout& layout,
                                    int out);

}  // namespace amp
