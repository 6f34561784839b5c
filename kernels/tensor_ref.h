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

// Row-major strides of dims (in elements).
inline std::vector<int64_t> Strides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (int64_t i = static_cast<int64_t>(dims.size()) - 2; i >= 0; --i)
    s[i] = s[i + 1] * dims[i + 1];
  return s;
}

// Strides of `in` broadcast to `out` dims (numpy rules; 0 on broadcast axes).
inline std::vector<int64_t> BroadcastStrides(const std::vector<int64_t>& in,
                                             const std::vector<int64_t>& out) {
  std::vector<int64_t> s(out.size(), 0);
  std::vector<int64_t> own = Strides(in);
  size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) s[off + i] = in[i] == 1 ? 0 : own[i];
  return s;
}

}  // namespace amp
