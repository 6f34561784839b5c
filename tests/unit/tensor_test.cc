// fp16 / bf16 conversion against known bit patterns: exact values, rounding
// ties to even, overflow to inf, subnormals, NaN.
#include "compiler/tensor.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>

namespace amp {
namespace {

TEST(HalfTest, ExactValues) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);  // largest finite half
  EXPECT_EQ(FloatToHalf(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(6.103515625e-05f), 0x0400);  // smallest normal 2^-14
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);
}

TEST(HalfTest, RoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
  EXPECT_EQ(FloatToHalf(1.0f + 0.00048828125f), 0x3c00);
  // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even).
  EXPECT_EQ(FloatToHalf(1.0f + 3 * 0.00048828125f), 0x3c02);
  // Just above the tie rounds up.
  EXPECT_EQ(FloatToHalf(std::nextafter(1.0f + 0.00048828125f, 2.0f)), 0x3c01);
}

TEST(HalfTest, OverflowGoesToInfinity) {
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);  // below the rounding boundary
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);  // the boundary rounds to inf
  EXPECT_EQ(FloatToHalf(1e10f), 0x7c00);
  EXPECT_EQ(FloatToHalf(-1e10f), 0xfc00);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_TRUE(std::isinf(HalfToFloat(0x7c00)));
}

TEST(HalfTest, Subnormals) {
  EXPECT_EQ(FloatToHalf(5.9604644775390625e-08f), 0x0001);  // 2^-24, smallest subnormal
  EXPECT_EQ(HalfToFloat(0x0001), 5.9604644775390625e-08f);
  EXPECT_EQ(HalfToFloat(0x03ff), 6.097555160522461e-05f);  // largest subnormal
  EXPECT_EQ(FloatToHalf(6.097555160522461e-05f), 0x03ff);
  // 2^-25 is a tie between 0 and 2^-24: rounds to even (0); above it rounds up.
  EXPECT_EQ(FloatToHalf(2.98023223876953125e-08f), 0x0000);
  EXPECT_EQ(FloatToHalf(3.0e-08f), 0x0001);
  // 1.5 * 2^-24 ties between 1 and 2 ulps: goes to 2 (even).
  EXPECT_EQ(FloatToHalf(8.940696716308594e-08f), 0x0002);
  EXPECT_EQ(FloatToHalf(1e-10f), 0x0000);
}

TEST(HalfTest, NaNStaysNaN) {
  uint16_t h = FloatToHalf(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(h & 0x7c00, 0x7c00);
  EXPECT_NE(h & 0x03ff, 0);
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7e00)));
  // A NaN whose payload lives only in the low bits must not become inf.
  uint16_t low = FloatToHalf(std::bit_cast<float>(0x7f800001u));
  EXPECT_NE(low & 0x03ff, 0);
}

TEST(HalfTest, EveryHalfRoundTrips) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    uint16_t h = static_cast<uint16_t>(bits);
    float f = HalfToFloat(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToHalf(f), h) << "bits 0x" << std::hex << bits;
  }
}

// The array conversions (F16C where the CPU has it) are the scalar ones bit
// for bit: every half, and floats around every half boundary (ties, the
// subnormal and overflow edges), NaNs with payloads, at lengths that leave
// a scalar tail.
TEST(HalfTest, ArrayConversionsAreTheScalarOnesBitForBit) {
  std::vector<uint16_t> halves(0x10000 + 3);
  for (size_t i = 0; i < halves.size(); ++i) halves[i] = static_cast<uint16_t>(i * 40503u);
  for (uint32_t b = 0; b < 0x10000; ++b) halves[b] = static_cast<uint16_t>(b);
  std::vector<float> f(halves.size());
  HalfToFloat(halves.data(), f.data(), static_cast<int64_t>(halves.size()));
  for (size_t i = 0; i < halves.size(); ++i)
    ASSERT_EQ(std::bit_cast<uint32_t>(f[i]), std::bit_cast<uint32_t>(HalfToFloat(halves[i])))
        << "half 0x" << std::hex << halves[i];
  std::vector<float> x;
  std::mt19937 rng(3);
  for (uint32_t b = 0; b < 0x10000; ++b) {
    uint32_t bits = std::bit_cast<uint32_t>(HalfToFloat(static_cast<uint16_t>(b)));
    for (int32_t d : {-4097, -4096, -4095, -1, 0, 1, 4095, 4096, 4097})
      x.push_back(std::bit_cast<float>(bits + d));
  }
  for (int i = 0; i < 100000; ++i) x.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng())));
  x.push_back(std::bit_cast<float>(0x7f800001u));  // signaling NaN, payload 1
  x.push_back(std::bit_cast<float>(0xffc12345u));
  std::vector<uint16_t> h(x.size());
  FloatToHalf(x.data(), h.data(), static_cast<int64_t>(x.size()));
  std::vector<float> r = x;
  RoundToHalf(r.data(), static_cast<int64_t>(r.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(h[i], FloatToHalf(x[i])) << "float 0x" << std::hex << std::bit_cast<uint32_t>(x[i]);
    ASSERT_EQ(std::bit_cast<uint32_t>(r[i]),
              std::bit_cast<uint32_t>(HalfToFloat(FloatToHalf(x[i]))))
        << "float 0x" << std::hex << std::bit_cast<uint32_t>(x[i]);
  }
}

TEST(BFloat16Test, Conversions) {
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3f80);
  EXPECT_EQ(BFloat16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(FloatToBFloat16(-2.0f), 0xc000);
  // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even is 1.
  EXPECT_EQ(FloatToBFloat16(1.00390625f), 0x3f80);
  // 1 + 3 * 2^-8 ties between 0x3f81 (odd) and 0x3f82 (even).
  EXPECT_EQ(FloatToBFloat16(1.01171875f), 0x3f82);
  // Largest finite float rounds to inf in bf16 (it is above bf16's max).
  EXPECT_EQ(FloatToBFloat16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(FloatToBFloat16(std::numeric_limits<float>::infinity()), 0x7f80);
  uint16_t nan = FloatToBFloat16(std::bit_cast<float>(0x7f800001u));
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(nan)));
  // Subnormals keep their top bits.
  EXPECT_EQ(FloatToBFloat16(std::bit_cast<float>(0x00010000u)), 0x0001);
}

TEST(TensorTest, ElementAccessAndCopyOnWrite) {
  Tensor a = Tensor::FromVector<float>(DType::kFloat32, {2, 2}, {1.5f, -2.0f, 3.25f, 4.0f});
  Tensor b = a;  // shares storage
  b.SetDouble(0, 7.0);
  EXPECT_EQ(a.GetDouble(0), 1.5);  // a unchanged
  EXPECT_EQ(b.GetDouble(0), 7.0);
  EXPECT_EQ(b.GetDouble(3), 4.0);
  Tensor h(DType::kFloat16, {3});
  h.SetDouble(1, 0.1);
  EXPECT_NEAR(h.GetDouble(1), 0.1, 1e-4);
  EXPECT_EQ(h.nbytes(), 6u);
}

// FirstNonFinite reads the raw storage; GetDouble + std::isfinite is the
// reference, on random data with NaN/inf planted at random places (one or
// two, in tensors shorter and longer than the scan's 1024-element blocks).
TEST(TensorTest, FirstNonFiniteMatchesGetDouble) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> value(-1e4, 1e4);
  const double specials[] = {std::nan(""), INFINITY, -INFINITY};
  for (DType t : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16}) {
    for (int trial = 0; trial < 50; ++trial) {
      const int64_t n = trial % 2 ? 37 : 3000;
      Tensor x(t, {n});
      for (int64_t i = 0; i < n; ++i) x.SetDouble(i, value(rng));
      int64_t planted = trial % 5 == 0 ? -1 : static_cast<int64_t>(rng() % n);
      if (planted >= 0) x.SetDouble(planted, specials[rng() % 3]);
      if (trial % 3 == 0) x.SetDouble(static_cast<int64_t>(rng() % n), specials[rng() % 3]);
      int64_t want = -1;
      for (int64_t i = 0; i < n && want < 0; ++i)
        if (!std::isfinite(x.GetDouble(i))) want = i;
      EXPECT_EQ(x.FirstNonFinite(), want) << DTypeName(t) << " trial " << trial;
      if (planted >= 0) {
        EXPECT_GE(want, 0);
      }
    }
  }
  EXPECT_EQ(Tensor::FromVector<int64_t>(DType::kInt64, {2}, {1, 2}).FirstNonFinite(), -1);
}

}  // namespace
}  // namespace amp
