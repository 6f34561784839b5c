// The CPU backend: host memory (64-byte aligned) and the kernels of
// kernels/cpu.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/cpu/kernel.h"
#include "runtime/backend.h"

namespace amp {
namespace {

// The CPU kernel table, readable without allocating anything.
Status CpuSupports(const Node& node) {
  if (cpu::FindKernel(node.domain(), node.op_type())) return Status::Ok();
  if (node.op_type() == "NonZero")
    return Unimplemented(node.Describe(),
                         ": NonZero's output shape depends on its data, and the runtime plans "
                         "every value's memory before the step; amp runs NonZero only where "
                         "its input is a compile-time constant (it then folds away)");
  return Unimplemented(node.Describe(), ": the CPU runtime has no kernel for '",
                       node.domain().empty() ? "" : node.domain() + ".", node.op_type(), "'");
}

class CpuKernelSupport : public KernelSupport {
 public:
  std::string_view name() const override { return "cpu"; }
  Status Supports(const Node& node) const override { return CpuSupports(node); }
  bool HasKernel(std::string_view domain, std::string_view op) const override {
    return cpu::FindKernel(std::string(domain), std::string(op)) != nullptr;
  }
};

class CpuBackend : public Backend {
 public:
  std::string_view name() const override { return "cpu"; }

  StatusOr<void*> Allocate(size_t bytes) override {
    size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) return Internal("cannot allocate ", bytes, " bytes of host memory");
    std::memset(p, 0, rounded);
    return p;
  }
  void Free(void* p) override { std::free(p); }
  const void* HostView(const void* p) const override { return p; }
  Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
    return Status::Ok();
  }
  Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
    return Status::Ok();
  }
  Status CopyOnDevice(void* dst, const void* src, size_t bytes) override {
    if (bytes && dst != src) std::memmove(dst, src, bytes);
    return Status::Ok();
  }

  Status Supports(const Node& node) const override { return CpuSupports(node); }
  bool HasKernel(std::string_view domain, std::string_view op) const override {
    return cpu::FindKernel(std::string(domain), std::string(op)) != nullptr;
  }

  Status Run(const KernelAttrs& node, const std::vector<const TensorRef*>& inputs,
             const std::vector<TensorRef*>& outputs, uint64_t step) override {
    cpu::KernelFn fn = cpu::FindKernel(node.domain(), node.op_type());
    if (!fn) return Unimplemented(node.Describe(), ": the CPU runtime has no kernel for it");
    cpu::KernelContext ctx{node, inputs, outputs, step, comm_};
    return fn(ctx);
  }

  Status Synchronize() override { return Status::Ok(); }
  Status SetCommunicator(Communicator* comm) override {
    comm_ = comm;
    return Status::Ok();
  }

 private:
  Communicator* comm_ = nullptr;
};

}  // namespace

#ifdef AMP_HAVE_CUDA
// cuda_backend.cc
StatusOr<std::unique_ptr<Backend>> CreateCudaBackend();
std::unique_ptr<KernelSupport> CreateCudaKernelSupport();
std::vector<std::string> CudaKernelOpNames();
#endif

std::unique_ptr<Backend> CreateCpuBackend() { return std::make_unique<CpuBackend>(); }

StatusOr<std::unique_ptr<Backend>> CreateBackend(std::string_view device) {
  if (device == "cpu") return CreateCpuBackend();
  if (device == "cuda") {
#ifdef AMP_HAVE_CUDA
    return CreateCudaBackend();
#else
    return Unimplemented(
        "--device cuda: this build of amp has no CUDA support (built without "
        "the CUDA toolkit); use --device cpu");
#endif
  }
  return InvalidArgument("unknown device '", device, "' (expected cpu or cuda)");
}

StatusOr<std::unique_ptr<KernelSupport>> KernelSupportFor(std::string_view device) {
  if (device == "cpu") return std::unique_ptr<KernelSupport>(new CpuKernelSupport());
  if (device == "cuda") {
#ifdef AMP_HAVE_CUDA
    return CreateCudaKernelSupport();
#else
    return Unimplemented("this build of amp has no CUDA support (built without the CUDA toolkit)");
#endif
  }
  return InvalidArgument("unknown device '", device, "' (expected cpu or cuda)");
}

StatusOr<std::vector<std::string>> KernelOpNames(std::string_view device) {
  if (device == "cpu") return cpu::KernelOpNames();
  if (device == "cuda") {
#ifdef AMP_HAVE_CUDA
    return CudaKernelOpNames();
#else
    return Unimplemented("this build of amp has no CUDA support (built without the CUDA toolkit)");
#endif
  }
  return InvalidArgument("unknown device '", device, "' (expected cpu or cuda)");
}

}  // namespace amp
