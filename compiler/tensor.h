// Tensor: constant data (an initializer, a Constant's value, a folded result).
// Storage is either owned bytes or a read-only window into a memory-mapped
// external-data file; both are shared, so copying a Tensor is cheap.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "compiler/dtype.h"
#include "compiler/shape.h"
#include "compiler/status.h"

namespace amp {

// A read-only byte range that keeps its backing store alive.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual const uint8_t* data() const = 0;
  virtual size_t size() const = 0;
};

// A whole file mapped read-only into memory.
class MappedFile : public Buffer {
 public:
  // Only regular files: a FIFO, a device, a socket or a folder is refused
  // before anything is read (the open does not block).
  static StatusOr<std::shared_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile() override;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const override { return data_; }
  size_t size() const override { return size_; }

 private:
  MappedFile(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  const uint8_t* data_;
  size_t size_;
};

// The bytes of a regular file (MappedFile::Open's checks), e.g. a text model
// or a JSON policy.
StatusOr<std::string> ReadRegularFile(const std::string& path);

class Tensor {
 public:
  Tensor() = default;
  // Owned storage, zero-filled; `dims` must be valid (non-negative, product fits).
  Tensor(DType dtype, std::vector<int64_t> dims);
  // A view of [offset, offset + bytes) of `buffer`.
  Tensor(DType dtype, std::vector<int64_t> dims, std::shared_ptr<const Buffer> buffer,
         size_t offset);

  template <typename T>
  static Tensor FromVector(DType dtype, std::vector<int64_t> dims, const std::vector<T>& values) {
    Tensor t(dtype, std::move(dims));
    AMP_CHECK(values.size() * sizeof(T) == t.nbytes());
    if (!values.empty()) std::memcpy(t.mutable_data(), values.data(), t.nbytes());
    return t;
  }

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  int64_t num_elements() const { return num_elements_; }
  size_t nbytes() const { return num_elements_ * DTypeSize(dtype_); }
  const uint8_t* data() const;
  // Copies shared storage first (copy on write).
  uint8_t* mutable_data();
  bool is_external() const { return external_; }

  template <typename T>
  std::span<const T> as() const {
    return {reinterpret_cast<const T*>(data()), static_cast<size_t>(num_elements_)};
  }
  // Element i converted to double / int64 (integer, bool and float types).
  double GetDouble(int64_t i) const;
  // The first element that is NaN or infinite, or -1 (also for non-float
  // types). Reads the storage directly: the runtime runs it on every FP32 step.
  int64_t FirstNonFinite() const;
  int64_t GetInt(int64_t i) const;
  void SetDouble(int64_t i, double v);
  // Exact for 64-bit integer types (INT64_MAX, the exporters' "to the end"
  // slice bound, has no double); other types as SetDouble.
  void SetInt(int64_t i, int64_t v);

 private:
  DType dtype_ = DType::kUndefined;
  std::vector<int64_t> dims_;
  int64_t num_elements_ = 0;
  std::shared_ptr<const Buffer> buffer_;
  size_t offset_ = 0;
  bool external_ = false;
};

// IEEE half and bfloat16 <-> float, round to nearest even. Inline: the CPU
// kernels convert every half element they load and store, in their inner
// loops.
inline float HalfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        man <<= 1;
        ++e;
      } while ((man & 0x400) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | man << 13;  // inf or NaN (payload kept)
  } else {
    bits = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  return std::bit_cast<float>(bits);
}

inline uint16_t FloatToHalf(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00 | static_cast<uint16_t>((abs >> 13) & 0x3ff);  // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00;  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {                       // below the smallest normal half
    if (abs < 0x33000000u) return sign;          // < 2^-25 rounds to zero
    uint32_t e = abs >> 23;
    uint32_t man = (abs & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;  // subnormal half has 2^-24 ulp
    uint32_t q = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;
    return sign | static_cast<uint16_t>(q);
  }
  uint32_t rounded = abs + 0xfff + ((abs >> 13) & 1);  // round to nearest even on bit 13
  return sign | static_cast<uint16_t>((rounded - 0x38000000u) >> 13);
}

inline float BFloat16ToFloat(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

inline uint16_t FloatToBFloat16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  uint32_t rounded = x + 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(rounded >> 16);
}

// The same over arrays, for the CPU kernels' inner loops: bit for bit the
// scalar conversions above, with the F16C instructions where the CPU has
// them (8 per instruction; round to nearest even, as above). RoundToHalf
// rounds floats to the nearest half in place (store, then load).
void HalfToFloat(const uint16_t* in, float* out, int64_t n);
void FloatToHalf(const float* in, uint16_t* out, int64_t n);
void RoundToHalf(float* x, int64_t n);

// The first of `n` elements of `dtype` at `data` that is NaN or infinite,
// or -1 (also for non-float types): what Tensor::FirstNonFinite reads, for
// memory a Tensor does not own (a runtime's buffers on the host).
int64_t FirstNonFinite(const void* data, DType dtype, int64_t n);

}  // namespace amp
