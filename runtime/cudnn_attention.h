// cuDNN's fused attention (flash attention on the matrix engines) for the
// CUDA backend's ai.amp Attention and AttentionGrad, where
// CudnnAttentionLayoutOf (ops/attention.h) says a node fits: one cuDNN graph
// per layout, built on first use (the first step) and cached; the forward
// writes O and the softmax statistics, the backward reads them
// (link-attention-stats) with q, k, v and dO and writes dq, dk and dv at
// their strides. cuDNN is loaded at run time (cudnn-frontend's dynamic
// loading; $AMP_CUDNN_LIBRARY names the library, else libcudnn.so.9 where the
// loader finds it): where it cannot be, Create says why and the backend runs
// its own kernels. Built only with the cudnn-frontend headers (tools/setup.sh).
#pragma once

#include <memory>
#include <string>

#include "compiler/status.h"
#include "ops/attention.h"

namespace amp {

#if defined(AMP_HAVE_CUDNN_FRONTEND)
inline constexpr bool kHaveCudnnAttention = true;
#else
inline constexpr bool kHaveCudnnAttention = false;
#endif

// The device pointers of a call: each tensor the layout's operands name
// (inputs by index, outputs by index), as the node reads and writes them.
struct CudnnAttentionCall {
  const CudnnAttentionLayout* layout = nullptr;
  bool grad = false;
  DType type = DType::kFloat16;  // q's (every operand's)
  float alpha = 1;
  const void* inputs[7] = {};
  void* outputs[3] = {};
};

class CudnnAttention {
 public:
  virtual ~CudnnAttention() = default;
  // Builds (once per layout) and runs the call's graph on the stream;
  // Unimplemented (remembered) where cuDNN has no engine for the layout,
  // for the caller to run its own kernels instead.
  virtual Status Run(const CudnnAttentionCall& call) = 0;
};

// Null with *why set where this build or this machine has no cuDNN.
std::unique_ptr<CudnnAttention> CreateCudnnAttention(void* stream, std::string* why);

}  // namespace amp
