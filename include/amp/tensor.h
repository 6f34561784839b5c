// Tensors at the API boundary: a TensorView is the caller's memory (host or
// CUDA), read by amp and never kept; an Array is a host copy amp returns
// (a fetched output, a parameter), owned by the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "amp/dtype.h"

namespace amp {

// Where a TensorView's data lives.
enum class Memory {
  kHost,  // ordinary memory
  kCuda,  // a CUDA device pointer (only for a Session on device "cuda")
};

// The DType of a C++ element type (float, double, the integers, bool).
// fp16 and bf16 have no C++ type: give their dtype to a TensorView yourself.
template <typename T>
constexpr DType DTypeOf() {
  if constexpr (std::is_same_v<T, float>) return DType::kFloat32;
  if constexpr (std::is_same_v<T, double>) return DType::kFloat64;
  if constexpr (std::is_same_v<T, int64_t>) return DType::kInt64;
  if constexpr (std::is_same_v<T, int32_t>) return DType::kInt32;
  if constexpr (std::is_same_v<T, int16_t>) return DType::kInt16;
  if constexpr (std::is_same_v<T, int8_t>) return DType::kInt8;
  if constexpr (std::is_same_v<T, uint8_t>) return DType::kUInt8;
  if constexpr (std::is_same_v<T, bool>) return DType::kBool;
  return DType::kUndefined;
}

// Dense, row-major (C-contiguous) data that amp reads during a call and copies.
struct TensorView {
  DType dtype = DType::kUndefined;
  std::vector<int64_t> dims;
  const void* data = nullptr;
  Memory memory = Memory::kHost;

  TensorView() = default;
  TensorView(DType dtype, std::vector<int64_t> dims, const void* data,
             Memory memory = Memory::kHost)
      : dtype(dtype), dims(std::move(dims)), data(data), memory(memory) {}
  // A host view of elements of type T, shaped `dims`.
  template <typename T>
  static TensorView Of(const T* data, std::vector<int64_t> dims) {
    static_assert(DTypeOf<T>() != DType::kUndefined, "no DType for this element type");
    return TensorView(DTypeOf<T>(), std::move(dims), data);
  }
  template <typename T>
  static TensorView Of(const std::vector<T>& values, std::vector<int64_t> dims) {
    return Of(values.data(), std::move(dims));
  }
};

// A host tensor amp hands back: its dtype, dims and bytes.
class Array {
 public:
  Array() = default;
  Array(DType dtype, std::vector<int64_t> dims, std::vector<uint8_t> bytes)
      : dtype_(dtype), dims_(std::move(dims)), bytes_(std::move(bytes)) {}

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  int64_t num_elements() const {
    int64_t n = 1;
    for (int64_t d : dims_) n *= d;
    return n;
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  const void* data() const { return bytes_.data(); }
  // Element i as T; T must be the array's element type.
  template <typename T>
  T at(int64_t i) const {
    T v;
    std::memcpy(&v, bytes_.data() + static_cast<size_t>(i) * sizeof(T), sizeof(T));
    return v;
  }
  TensorView view() const { return TensorView(dtype_, dims_, bytes_.data()); }

 private:
  DType dtype_ = DType::kUndefined;
  std::vector<int64_t> dims_;
  std::vector<uint8_t> bytes_;
};

}  // namespace amp
