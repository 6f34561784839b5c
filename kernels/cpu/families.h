// The CPU kernel families (one file each) and the one explicit table that
// registry.cc builds from them.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "kernels/cpu/kernel.h"

namespace amp::cpu {

// Keys: "Op" for the default domain, "domain:Op" otherwise.
using KernelTable = std::map<std::string, KernelFn>;

void RegisterElementwiseKernels(KernelTable& t);  // elementwise.cc
void RegisterGemmKernels(KernelTable& t);         // gemm.cc
void RegisterConvKernels(KernelTable& t);         // conv.cc
void RegisterPoolKernels(KernelTable& t);         // pool.cc
void RegisterNormKernels(KernelTable& t);         // norm.cc
void RegisterReduceKernels(KernelTable& t);       // reduce.cc (and Softmax family, ArgMax)
void RegisterLossKernels(KernelTable& t);         // loss.cc
void RegisterDataKernels(KernelTable& t);         // data.cc (shape, copy and index ops)
void RegisterOptimizerKernels(KernelTable& t);    // optimizer.cc (ai.onnx.preview.training)
void RegisterRnnKernels(KernelTable& t);          // rnn.cc (RNN, GRU, LSTM)
void RegisterResizeKernels(KernelTable& t);       // resize.cc
void RegisterEinsumKernels(KernelTable& t);       // einsum.cc
void RegisterCollectiveKernels(KernelTable& t);   // collective.cc (ai.amp AllReduce)
void RegisterFusedKernels(KernelTable& t);        // fused.cc (ai.amp FusedElementwise, MultiCast)
void RegisterAttentionKernels(KernelTable& t);    // attention.cc (ai.amp Attention, AttentionGrad)

// The ops fused.cc's interpreter runs (every one of ops/fused_elementwise.h's
// FusableOps, checked by a test).
std::vector<std::string> FusedKernelOps();

}  // namespace amp::cpu
