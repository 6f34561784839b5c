// The Backend interface: what the executor needs from a device. The CPU
// backend (cpu_backend.cc) and the CUDA backend (cuda_backend.cc) implement
// it; the executor (executor.h) and the Executables it runs are the same for
// both. What each backend can run is a table readable without a device
// (KernelSupportFor), which the compiler and the op-consistency test read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/executable.h"
#include "compiler/ir.h"
#include "compiler/kernel_attrs.h"
#include "compiler/status.h"
#include "kernels/communicator.h"
#include "kernels/tensor_ref.h"

namespace amp {

class Backend : public KernelSupport {
 public:
  // Device memory: one call per arena or persistent buffer, never inside a step.
  virtual StatusOr<void*> Allocate(size_t bytes) = 0;
  virtual void Free(void* p) = 0;
  virtual Status CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual Status CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  virtual Status CopyOnDevice(void* dst, const void* src, size_t bytes) = 0;
  // `p` (this backend's memory) as the host may read it in place, or null
  // where it must be copied to the host first (a GPU's).
  virtual const void* HostView(const void* p) const {
    (void)p;
    return nullptr;
  }

  // Computes one call of an Executable (its op and decoded attributes);
  // inputs and outputs live in this backend's memory and have the static
  // shapes of the plan. `step` seeds random ops.
  virtual Status Run(const KernelAttrs& call, const std::vector<const TensorRef*>& inputs,
                     const std::vector<TensorRef*>& outputs, uint64_t step) = 0;
  // Waits for queued work (a no-op on the CPU).
  virtual Status Synchronize() = 0;
  // The ranks ai.amp AllReduce reduces over (data-parallel steps); not owned.
  // A backend without collectives says so.
  virtual Status SetCommunicator(Communicator* comm) {
    (void)comm;
    return Unimplemented("the ", name(),
                         " backend has no collectives yet (data-parallel runs on the cpu)");
  }
};

std::unique_ptr<Backend> CreateCpuBackend();
// The kernel table of "cpu" or "cuda" without opening a device (for "cuda",
// an error when this build has no CUDA support).
StatusOr<std::unique_ptr<KernelSupport>> KernelSupportFor(std::string_view device);
// The ops a backend has kernels for: "Op", or "domain:Op" outside the
// default domain.
StatusOr<std::vector<std::string>> KernelOpNames(std::string_view device);
// "cpu" or "cuda"; "cuda" without a usable GPU (or without CUDA support in
// this build) is an error that says so.
StatusOr<std::unique_ptr<Backend>> CreateBackend(std::string_view device);

}  // namespace amp
