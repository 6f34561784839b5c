#include "compiler/tensor.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>

namespace amp {
namespace {

class OwnedBuffer : public Buffer {
 public:
  explicit OwnedBuffer(size_t n) : bytes_(n) {}
  OwnedBuffer(const uint8_t* p, size_t n) : bytes_(p, p + n) {}
  const uint8_t* data() const override { return bytes_.data(); }
  size_t size() const override { return bytes_.size(); }
  uint8_t* mutable_data() { return bytes_.data(); }

 private:
  std::vector<uint8_t> bytes_;
};

int64_t Product(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    AMP_CHECK(d >= 0);
    n *= d;
  }
  return n;
}

}  // namespace

StatusOr<std::shared_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
  // writer forever. fstat then refuses everything but a regular file (FIFOs,
  // devices such as /dev/zero, sockets, folders) before a byte is read.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return NotFound("cannot open '", path, "': ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return IoError("cannot stat '", path, "': ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    const char* kind = S_ISDIR(st.st_mode)    ? "a folder"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    return InvalidArgument("'", path, "' is ", kind, ", not a regular file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  const uint8_t* data = nullptr;
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return IoError("cannot map '", path, "': ", std::strerror(errno));
    }
    data = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return std::shared_ptr<MappedFile>(new MappedFile(data, size));
}

int64_t Tensor::FirstNonFinite() const {
  return amp::FirstNonFinite(data(), dtype_, num_elements());
}

namespace {

#if defined(__x86_64__)
#define AMP_F16C 1
// CPUID: F16C and AVX, and the OS saving the YMM registers (clang 14's
// __builtin_cpu_supports knows no "f16c").
bool HaveF16c() {
  static const bool have = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const unsigned osxsave = 1u << 27, avx = 1u << 28, f16c = 1u << 29;
    if ((c & (osxsave | avx | f16c)) != (osxsave | avx | f16c)) return false;
    unsigned lo = 0, hi = 0;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6u) == 6u;  // XMM and YMM state enabled
  }();
  return have;
}

// A signaling NaN half (quiet bit clear, payload set): the instruction
// quiets it where the scalar conversion keeps it as it is.
inline bool SignalingNaN(uint16_t h) {
  return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0 && (h & 0x200) == 0;
}

__attribute__((target("avx,f16c"))) void HalfToFloatF16c(const uint16_t* in, float* out,
                                                         int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) out[i] = HalfToFloat(in[i]);
  for (int64_t j = 0; j < n; ++j)  // (rare; the compiler vectorizes the test)
    if (SignalingNaN(in[j])) out[j] = HalfToFloat(in[j]);
}

__attribute__((target("avx,f16c"))) void FloatToHalfF16c(const float* in, uint16_t* out,
                                                         int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = FloatToHalf(in[i]);
}

__attribute__((target("avx,f16c"))) void RoundToHalfF16c(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) x[i] = HalfToFloat(FloatToHalf(x[i]));
}
#endif

}  // namespace

void HalfToFloat(const uint16_t* in, float* out, int64_t n) {
#if AMP_F16C
  if (HaveF16c()) return HalfToFloatF16c(in, out, n);
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = HalfToFloat(in[i]);
}

void FloatToHalf(const float* in, uint16_t* out, int64_t n) {
#if AMP_F16C
  if (HaveF16c()) return FloatToHalfF16c(in, out, n);
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = FloatToHalf(in[i]);
}

void RoundToHalf(float* x, int64_t n) {
#if AMP_F16C
  if (HaveF16c()) return RoundToHalfF16c(x, n);
#endif
  for (int64_t i = 0; i < n; ++i) x[i] = HalfToFloat(FloatToHalf(x[i]));
}

int64_t FirstNonFinite(const void* data, DType dtype, int64_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  // The bits of each element: all-ones exponent means inf or NaN. Blocks
  // are tested without branches (a loop the compiler vectorizes), then the
  // first block with one is searched.
  auto scan = [&](auto word, auto mask) -> int64_t {
    using W = decltype(word);
    constexpr int64_t kBlock = 1024;
    for (int64_t begin = 0; begin < n; begin += kBlock) {
      int64_t end = std::min(n, begin + kBlock);
      W any = 0;
      for (int64_t i = begin; i < end; ++i) {
        W v;
        std::memcpy(&v, p + i * sizeof(W), sizeof(W));
        any |= static_cast<W>((v & mask) == mask);
      }
      if (!any) continue;
      for (int64_t i = begin; i < end; ++i) {
        W v;
        std::memcpy(&v, p + i * sizeof(W), sizeof(W));
        if ((v & mask) == mask) return i;
      }
    }
    return -1;
  };
  switch (dtype) {
    case DType::kFloat32:
      return scan(uint32_t{}, uint32_t{0x7f800000u});
    case DType::kFloat64:
      return scan(uint64_t{}, uint64_t{0x7ff0000000000000ull});
    case DType::kFloat16:
      return scan(uint16_t{}, uint16_t{0x7c00});
    case DType::kBFloat16:
      return scan(uint16_t{}, uint16_t{0x7f80});
    default:
      return -1;
  }
}

StatusOr<std::string> ReadRegularFile(const std::string& path) {
  AMP_ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  return std::string(reinterpret_cast<const char*>(file->data()), file->size());
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

Tensor::Tensor(DType dtype, std::vector<int64_t> dims)
    : dtype_(dtype), dims_(std::move(dims)), num_elements_(Product(dims_)) {
  buffer_ = std::make_shared<OwnedBuffer>(nbytes());
}

Tensor::Tensor(DType dtype, std::vector<int64_t> dims, std::shared_ptr<const Buffer> buffer,
               size_t offset)
    : dtype_(dtype),
      dims_(std::move(dims)),
      num_elements_(Product(dims_)),
      buffer_(std::move(buffer)),
      offset_(offset),
      external_(dynamic_cast<const MappedFile*>(buffer_.get()) != nullptr) {
  AMP_CHECK(offset_ + nbytes() <= buffer_->size());
}

const uint8_t* Tensor::data() const { return buffer_ ? buffer_->data() + offset_ : nullptr; }

uint8_t* Tensor::mutable_data() {
  auto* owned = dynamic_cast<OwnedBuffer*>(const_cast<Buffer*>(buffer_.get()));
  if (owned == nullptr || buffer_.use_count() > 1 || offset_ != 0) {
    auto copy = std::make_shared<OwnedBuffer>(data(), nbytes());
    owned = copy.get();
    buffer_ = std::move(copy);
    offset_ = 0;
    external_ = false;
  }
  return owned->mutable_data();
}

double Tensor::GetDouble(int64_t i) const {
  AMP_CHECK(i >= 0 && i < num_elements_);
  const uint8_t* p = data() + i * DTypeSize(dtype_);
  auto load = [p]<typename T>(T) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  };
  switch (dtype_) {
    case DType::kFloat32:
      return load(float{});
    case DType::kFloat64:
      return load(double{});
    case DType::kFloat16:
      return HalfToFloat(load(uint16_t{}));
    case DType::kBFloat16:
      return BFloat16ToFloat(load(uint16_t{}));
    case DType::kBool:
    case DType::kUInt8:
      return load(uint8_t{});
    case DType::kInt8:
      return load(int8_t{});
    case DType::kUInt16:
      return load(uint16_t{});
    case DType::kInt16:
      return load(int16_t{});
    case DType::kInt32:
      return load(int32_t{});
    case DType::kInt64:
      return static_cast<double>(load(int64_t{}));
    case DType::kUInt32:
      return load(uint32_t{});
    case DType::kUInt64:
      return static_cast<double>(load(uint64_t{}));
    default:
      AMP_CHECK(false && "GetDouble on a non-numeric tensor");
  }
}

int64_t Tensor::GetInt(int64_t i) const {
  if (dtype_ == DType::kInt64) return as<int64_t>()[i];
  if (dtype_ == DType::kUInt64) return static_cast<int64_t>(as<uint64_t>()[i]);
  double v = GetDouble(i);
  if (!(v > -9.2e18 && v < 9.2e18)) return 0;  // NaN/inf/huge: no defined integer value
  return static_cast<int64_t>(v);
}

void Tensor::SetInt(int64_t i, int64_t v) {
  AMP_CHECK(i >= 0 && i < num_elements_);
  if (dtype_ == DType::kInt64 || dtype_ == DType::kUInt64) {
    std::memcpy(mutable_data() + i * 8, &v, 8);
    return;
  }
  SetDouble(i, static_cast<double>(v));
}

void Tensor::SetDouble(int64_t i, double v) {
  AMP_CHECK(i >= 0 && i < num_elements_);
  uint8_t* p = mutable_data() + i * DTypeSize(dtype_);
  auto store = [p]<typename T>(T x) { std::memcpy(p, &x, sizeof(T)); };
  auto to_int = [](double x) -> int64_t {
    if (!(x > -9.2e18 && x < 9.2e18)) return 0;
    return static_cast<int64_t>(x);
  };
  switch (dtype_) {
    case DType::kFloat32:
      store(static_cast<float>(v));
      break;
    case DType::kFloat64:
      store(v);
      break;
    case DType::kFloat16:
      store(FloatToHalf(static_cast<float>(v)));
      break;
    case DType::kBFloat16:
      store(FloatToBFloat16(static_cast<float>(v)));
      break;
    case DType::kBool:
      store(static_cast<uint8_t>(v != 0));
      break;
    case DType::kUInt8:
      store(static_cast<uint8_t>(to_int(v)));
      break;
    case DType::kInt8:
      store(static_cast<int8_t>(to_int(v)));
      break;
    case DType::kUInt16:
      store(static_cast<uint16_t>(to_int(v)));
      break;
    case DType::kInt16:
      store(static_cast<int16_t>(to_int(v)));
      break;
    case DType::kInt32:
      store(static_cast<int32_t>(to_int(v)));
      break;
    case DType::kInt64:
      store(to_int(v));
      break;
    case DType::kUInt32:
      store(static_cast<uint32_t>(to_int(v)));
      break;
    case DType::kUInt64:
      store(static_cast<uint64_t>(to_int(v)));
      break;
    default:
      AMP_CHECK(false && "SetDouble on a non-numeric tensor");
  }
}

}  // namespace amp
