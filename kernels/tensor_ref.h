// The tensor every backend's kernels see: an element type, static dims and a
// pointer into the backend's memory (host memory for the CPU, device memory
// for CUDA). It owns nothing; the runtime's memory plan owns the memory.
#pragma once

#include <cstdint>
#include <vector>

#include "compiler/dtype.h"

namespace amp {

// A tensor the runtime holds: element type, static dims, and its memory.
struct TensorRef {
  DType dtype = DType::kUndefined;
  std::vector<int64_t> dims;
  void* data = nullptr;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype); }
  int64_t rank() const { return static_cast<int64_t>(dims.size()); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

}  // namespace amp
