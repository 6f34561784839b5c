// Helpers the CPU kernel files share: integer reads, float conversion,
// strides, and the OpenBLAS GEMM.
#include <cblas.h>

#include "kernels/cpu/kernel.h"
#include "kernels/cpu/parallel.h"

namespace amp::cpu {

int64_t ReadInt(const TensorRef& t, int64_t i) {
  int64_t v = 0;
  bool ok = VisitType(t.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (kIsFloat<T>)
      v = static_cast<int64_t>(Load(t.as<T>()[i]));
    else
      v = static_cast<int64_t>(t.as<T>()[i]);
  });
  AMP_CHECK(ok);
  return v;
}

std::vector<int64_t> ReadInts(const TensorRef& t) {
  std::vector<int64_t> out(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) out[i] = ReadInt(t, i);
  return out;
}

double ReadDouble(const TensorRef& t, int64_t i) {
  double v = 0;
  bool ok = VisitType(t.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    v = static_cast<double>(Load(t.as<T>()[i]));
  });
  AMP_CHECK(ok);
  return v;
}

// Conversions split over the threads in chunks of this many elements.
constexpr int64_t kConvertGrain = int64_t{1} << 16;

void WidenInto(const TensorRef& t, float* out) {
  AMP_CHECK(IsFloat(t.dtype));
  ParallelFor(t.numel(), kConvertGrain, [&](int64_t first, int64_t last) {
    if (t.dtype == DType::kFloat16) {
      HalfToFloat(&t.as<f16>()[first].bits, out + first, last - first);
      return;
    }
    VisitFloat(t.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* p = t.as<T>();
      for (int64_t i = first; i < last; ++i) out[i] = static_cast<float>(Load(p[i]));
    });
  });
}

void NarrowInto(const float* values, TensorRef& t) {
  AMP_CHECK(IsFloat(t.dtype));
  ParallelFor(t.numel(), kConvertGrain, [&](int64_t first, int64_t last) {
    if (t.dtype == DType::kFloat16) {
      FloatToHalf(values + first, &t.as<f16>()[first].bits, last - first);
      return;
    }
    VisitFloat(t.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* p = t.as<T>();
      for (int64_t i = first; i < last; ++i) p[i] = Store<T>(values[i]);
    });
  });
}

std::vector<float> ToFloat(const TensorRef& t) {
  std::vector<float> out(t.numel());
  WidenInto(t, out.data());
  return out;
}

void FromFloat(const std::vector<float>& values, TensorRef& t) {
  AMP_CHECK(static_cast<int64_t>(values.size()) == t.numel());
  NarrowInto(values.data(), t);
}

void Sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0 ? 0.f : beta * c[i * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
}

void Dgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
           const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
           int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0 ? 0.0 : beta * c[i * ldc + j];
    return;
  }
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
}

int64_t Product(const std::vector<int64_t>& v, size_t from) {
  int64_t p = 1;
  for (size_t i = from; i < v.size(); ++i) p *= v[i];
  return p;
}

std::vector<int64_t> AttrOr(const KernelAttrs& n, const char* name, size_t r, int64_t def) {
  std::vector<int64_t> v = n.GetInts(name);
  if (v.empty()) v.assign(r, def);
  return v;
}

// For every kernel position kp and every position p of the "small" grid
// (the output grid of Conv, the input grid of ConvTranspose): the flat
// index on the "large" grid at small*stride - pad + k*dilation, or -1 when
// it falls into padding.
std::vector<int64_t> IndexTable(const std::vector<int64_t>& small,
                                const std::vector<int64_t>& large,
                                const std::vector<int64_t>& kernel,
                                const std::vector<int64_t>& strides,
                                const std::vector<int64_t>& pad_begin,
                                const std::vector<int64_t>& dilations) {
  size_t r = small.size();
  int64_t ns = Product(small), nk = Product(kernel);
  std::vector<int64_t> table(ns * nk);
  std::vector<int64_t> kidx(r, 0);
  for (int64_t kp = 0; kp < nk; ++kp) {
    std::vector<int64_t> sidx(r, 0);
    for (int64_t p = 0; p < ns; ++p) {
      int64_t flat = 0;
      bool inside = true;
      for (size_t d = 0; d < r; ++d) {
        int64_t pos = sidx[d] * strides[d] - pad_begin[d] + kidx[d] * dilations[d];
        if (pos < 0 || pos >= large[d]) {
          inside = false;
          break;
        }
        flat = flat * large[d] + pos;
      }
      table[kp * ns + p] = inside ? flat : -1;
      for (int64_t d = static_cast<int64_t>(r) - 1; d >= 0; --d) {
        if (++sidx[d] < small[d]) break;
        sidx[d] = 0;
      }
    }
    for (int64_t d = static_cast<int64_t>(r) - 1; d >= 0; --d) {
      if (++kidx[d] < kernel[d]) break;
      kidx[d] = 0;
    }
  }
  return table;
}

// Pad at the start of each spatial dim, from pads or auto_pad.
std::vector<int64_t> PadBegin(const KernelAttrs& n, const std::vector<int64_t>& in,
                              const std::vector<int64_t>& out, const std::vector<int64_t>& kernel,
                              const std::vector<int64_t>& strides,
                              const std::vector<int64_t>& dilations) {
  size_t r = in.size();
  std::string auto_pad = n.GetString("auto_pad", "NOTSET");
  std::vector<int64_t> begin(r, 0);
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (size_t d = 0; d < r; ++d) {
      int64_t total = std::max<int64_t>(
          0, (out[d] - 1) * strides[d] + (kernel[d] - 1) * dilations[d] + 1 - in[d]);
      begin[d] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
    }
  } else if (auto_pad == "NOTSET") {
    std::vector<int64_t> pads = n.GetInts("pads");
    if (pads.size() == 2 * r) begin.assign(pads.begin(), pads.begin() + r);
  }
  return begin;
}

}  // namespace amp::cpu
