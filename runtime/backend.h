// The Backend interface: what the executor needs from a device. The CPU
// backend (cpu_backend.cc) implements it now, the CUDA backend next; the
// executor (session.h) and its static memory plan are the same for both.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/ir.h"
#include "compiler/status.h"
#include "kernels/tensor_ref.h"

namespace amp {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  // Device memory: one call per arena or persistent buffer, never inside a step.
  virtual StatusOr<void*> Allocate(size_t bytes) = 0;
  virtual void Free(void* p) = 0;
  virtual Status CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual Status CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  virtual Status CopyOnDevice(void* dst, const void* src, size_t bytes) = 0;

  // Ok when the backend has a kernel for `node`, else an error naming it.
  virtual Status Supports(const Node& node) const = 0;
  // Computes `node`; inputs and outputs live in this backend's memory and
  // have the static shapes of the plan. `step` seeds random ops.
  virtual Status Run(const Node& node, const std::vector<const TensorRef*>& inputs,
                     const std::vector<TensorRef*>& outputs, uint64_t step) = 0;
  // Waits for queued work (a no-op on the CPU).
  virtual Status Synchronize() = 0;
};

std::unique_ptr<Backend> CreateCpuBackend();
// "cpu" or "cuda"; "cuda" without a usable GPU (or without CUDA support in
// this build) is an error that says so.
StatusOr<std::unique_ptr<Backend>> CreateBackend(std::string_view device);

}  // namespace amp
