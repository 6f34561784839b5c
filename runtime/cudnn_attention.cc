#include "runtime/cudnn_attention.h"

#if defined(AMP_HAVE_CUDNN_FRONTEND)
#include <cuda_runtime.h>
#include <cudnn_frontend.h>
#include <dlfcn.h>

#include <cstdlib>
#include <map>
#include <sstream>
#include <unordered_map>
#endif

namespace amp {

#if !defined(AMP_HAVE_CUDNN_FRONTEND)

std::unique_ptr<CudnnAttention> CreateCudnnAttention(void*, std::string* why) {
  *why = "this build has no cudnn-frontend headers (tools/setup.sh fetches them)";
  return nullptr;
}

#else

}  // namespace amp

// cudnn-frontend's dynamic loading reads libcudnn's symbols through this
// handle, which its user opens (CreateCudnnAttention).
namespace cudnn_frontend {
void* cudnn_dlhandle = nullptr;
}  // namespace cudnn_frontend

namespace amp {
namespace {

namespace fe = cudnn_frontend;
namespace shim = cudnn_frontend::detail;
using TensorPtr = std::shared_ptr<fe::graph::Tensor_attributes>;

// Tensor uids in a graph's variant pack.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kDO, kStats, kBias, kDQ, kDK, kDV };

std::vector<int64_t> Dims(const BhsdTensor& t) { return {t.dims, t.dims + 4}; }
std::vector<int64_t> Strides(const BhsdTensor& t) { return {t.strides, t.strides + 4}; }

// The graph's cache key: everything that shapes it.
std::string Key(const CudnnAttentionCall& c) {
  const CudnnAttentionLayout& l = *c.layout;
  std::ostringstream k;
  k << c.grad << ' ' << (c.outputs[1] != nullptr) << ' ' << static_cast<int>(c.type) << ' '
    << c.alpha << ' ' << l.b << ' ' << l.h << ' ' << l.sq << ' ' << l.sk << ' ' << l.d << ' '
    << l.dv << ' ' << l.has_bias;
  auto add = [&](const BhsdTensor& t) {
    for (int i = 0; i < 4; ++i) k << ' ' << t.dims[i] << ':' << t.strides[i];
  };
  for (const BhsdTensor& t : l.operands) add(t);
  if (l.has_bias) add(l.bias);
  return k.str();
}

struct Built {
  std::shared_ptr<fe::graph::Graph> graph;  // null: cuDNN has none (`why`)
  int64_t workspace = 0;
  std::string why;
};

class CudnnAttentionImpl : public CudnnAttention {
 public:
  CudnnAttentionImpl(cudnnHandle_t h, cudaStream_t s) : handle_(h), stream_(s) {}
  ~CudnnAttentionImpl() override {
    if (workspace_) cudaFree(workspace_);
    shim::destroy_handle(handle_);
  }

  Status Run(const CudnnAttentionCall& call) override {
    try {
      return RunOrThrow(call);
    } catch (const std::exception& e) {  // cudnn-frontend's loader throws
      return Internal("cuDNN attention: ", e.what());
    }
  }

 private:
  StatusOr<Built*> Build(const CudnnAttentionCall& call) {
    std::string key = Key(call);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      if (!it->second.graph) return Unimplemented(it->second.why);
      return &it->second;
    }
    const CudnnAttentionLayout& l = *call.layout;
    auto g = std::make_shared<fe::graph::Graph>();
    g->set_io_data_type(call.type == DType::kBFloat16 ? fe::DataType_t::BFLOAT16
                                                      : fe::DataType_t::HALF)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    auto tensor = [&](const BhsdTensor& t, const char* name, int64_t uid) {
      return g->tensor(
          fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(Dims(t)).set_stride(
              Strides(t)));
    };
    auto output = [&](const TensorPtr& p, const BhsdTensor& t, int64_t uid) {
      p->set_output(true).set_uid(uid).set_dim(Dims(t)).set_stride(Strides(t));
    };
    const auto& ops = l.operands;
    TensorPtr q = tensor(ops[kAttnQ], "q", kQ), k = tensor(ops[kAttnK], "k", kK),
              v = tensor(ops[kAttnV], "v", kV);
    TensorPtr bias = l.has_bias ? tensor(l.bias, "bias", kBias) : nullptr;
    if (!call.grad) {
      auto opts = fe::graph::SDPA_attributes()
                      .set_name("attention")
                      .set_generate_stats(call.outputs[1] != nullptr)
                      .set_attn_scale(call.alpha);
      if (bias) opts.set_bias(bias);
      auto [o, stats] = g->sdpa(q, k, v, opts);
      output(o, ops[kAttnO], kO);
      if (call.outputs[1]) {
        output(stats, l.stats, kStats);
        stats->set_data_type(fe::DataType_t::FLOAT);
      }
    } else {
      TensorPtr o = tensor(ops[kAttnFwdO], "o", kO), dout = tensor(ops[kAttnDO], "do", kDO);
      TensorPtr stats = tensor(l.stats, "stats", kStats);
      stats->set_data_type(fe::DataType_t::FLOAT);
      auto opts = fe::graph::SDPA_backward_attributes()
                      .set_name("attention_backward")
                      .set_attn_scale(call.alpha);
      if (bias) opts.set_bias(bias);
      auto [dq, dk, dv] = g->sdpa_backward(q, k, v, o, dout, stats, opts);
      output(dq, ops[kAttnDQ], kDQ);
      output(dk, ops[kAttnDK], kDK);
      output(dv, ops[kAttnDV], kDV);
    }
    auto err = g->build(handle_, {fe::HeurMode_t::A});
    if (!err.is_good()) {
      Built none;
      none.why = "cuDNN has no fused attention for this layout: " + err.get_message();
      return Unimplemented(cache_.emplace(key, std::move(none)).first->second.why);
    }
    Built b;
    b.graph = g;
    err = g->get_workspace_size(b.workspace);
    if (!err.is_good()) return Internal("cuDNN attention workspace: ", err.get_message());
    // (Grown while graphs are built - the first step - never after.)
    if (static_cast<size_t>(b.workspace) > workspace_bytes_) {
      if (workspace_) cudaFree(workspace_);
      workspace_ = nullptr;
      workspace_bytes_ = 0;
      if (cudaMalloc(&workspace_, static_cast<size_t>(b.workspace)) != cudaSuccess)
        return Internal("cuDNN attention: cannot allocate its ", b.workspace, "-byte workspace");
      workspace_bytes_ = static_cast<size_t>(b.workspace);
    }
    return &cache_.emplace(key, std::move(b)).first->second;
  }

  Status RunOrThrow(const CudnnAttentionCall& call) {
    if (shim::set_stream(handle_, stream_) != CUDNN_STATUS_SUCCESS)
      return Internal("cudnnSetStream failed");
    AMP_ASSIGN_OR_RETURN(Built * b, Build(call));
    const CudnnAttentionLayout& l = *call.layout;
    const size_t elem = 2;  // float16 or bfloat16
    auto in = [&](const BhsdTensor& t) {
      return const_cast<char*>(static_cast<const char*>(call.inputs[t.tensor])) + t.offset * elem;
    };
    auto out = [&](const BhsdTensor& t) {
      return static_cast<char*>(call.outputs[t.tensor]) + t.offset * elem;
    };
    const auto& ops = l.operands;
    std::unordered_map<int64_t, void*> pack = {
        {kQ, in(ops[kAttnQ])}, {kK, in(ops[kAttnK])}, {kV, in(ops[kAttnV])}};
    if (l.has_bias) pack[kBias] = in(l.bias);
    if (!call.grad) {
      pack[kO] = out(ops[kAttnO]);
      if (call.outputs[1]) pack[kStats] = call.outputs[1];
    } else {
      pack[kO] = in(ops[kAttnFwdO]);
      pack[kDO] = in(ops[kAttnDO]);
      pack[kStats] = const_cast<void*>(call.inputs[6]);
      pack[kDQ] = out(ops[kAttnDQ]);
      pack[kDK] = out(ops[kAttnDK]);
      pack[kDV] = out(ops[kAttnDV]);
    }
    auto err = b->graph->execute(handle_, pack, workspace_);
    if (!err.is_good()) return Internal("cuDNN attention: ", err.get_message());
    return Status::Ok();
  }

  cudnnHandle_t handle_;
  cudaStream_t stream_;
  std::map<std::string, Built> cache_;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

}  // namespace

std::unique_ptr<CudnnAttention> CreateCudnnAttention(void* stream, std::string* why) {
  try {
    if (!cudnn_frontend::cudnn_dlhandle) {
      // $AMP_CUDNN_LIBRARY, or libcudnn.so.9 where the loader finds it.
      const char* env = std::getenv("AMP_CUDNN_LIBRARY");
      const char* lib = env && *env ? env : "libcudnn.so.9";
      cudnn_frontend::cudnn_dlhandle = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
      if (!cudnn_frontend::cudnn_dlhandle) {
        const char* e = dlerror();
        *why = std::string("cannot load ") + lib + ": " + (e ? e : "not found");
        return nullptr;
      }
    }
    cudnnHandle_t h = nullptr;
    cudnnStatus_t st = shim::create_handle(&h);
    if (st != CUDNN_STATUS_SUCCESS) {
      *why = std::string("cudnnCreate: ") + shim::get_error_string(st);
      return nullptr;
    }
    return std::make_unique<CudnnAttentionImpl>(h, static_cast<cudaStream_t>(stream));
  } catch (const std::exception& e) {  // libcudnn not found
    *why = e.what();
    return nullptr;
  }
}

#endif

}  // namespace amp
