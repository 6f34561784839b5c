// The CUDA cast kernels agree bit for bit with the CPU conversion
// (compiler/tensor.h), which tensor_test.cc checks against known patterns.
// Skips, saying why, where no GPU is present.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <vector>

#include "compiler/tensor.h"
#include "kernels/cuda/cast.h"

namespace amp {
namespace {

using cuda::HalfKind;

class CudaCastTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0)
      GTEST_SKIP() << "no CUDA device here (" << cudaGetErrorString(err)
                   << "); this test runs on the GPU machine";
  }
};

std::vector<float> TestFloats() {
  std::vector<float> v = {0.0f,      -0.0f, 1.0f,    65504.0f,    65520.0f,
                          65519.0f,  1e-8f, 3e-8f,   6.1e-5f,     INFINITY,
                          -INFINITY, NAN,   3.4e38f, 1.00390625f, 1.01171875f};
  std::mt19937 rng(3);
  for (int i = 0; i < 100000; ++i) v.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng())));
  return v;
}

void RunBoth(HalfKind kind, uint16_t (*cpu)(float), float (*cpu_back)(uint16_t)) {
  std::vector<float> in = TestFloats();
  size_t n = in.size();
  float* d_in = nullptr;
  uint16_t* d_half = nullptr;
  float* d_back = nullptr;
  ASSERT_EQ(cudaMalloc(&d_in, n * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_half, n * 2), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_back, n * 4), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(d_in, in.data(), n * 4, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemset(d_half, 0xff, n * 2), cudaSuccess);  // poison
  ASSERT_TRUE(cuda::CastFloatToHalf(d_in, d_half, static_cast<int64_t>(n), kind, nullptr).ok());
  ASSERT_TRUE(cuda::CastHalfToFloat(d_half, d_back, static_cast<int64_t>(n), kind, nullptr).ok());
  std::vector<uint16_t> half(n);
  std::vector<float> back(n);
  ASSERT_EQ(cudaMemcpy(half.data(), d_half, n * 2, cudaMemcpyDeviceToHost), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(back.data(), d_back, n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(d_in);
  cudaFree(d_half);
  cudaFree(d_back);
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(in[i])) {
      EXPECT_TRUE(std::isnan(back[i])) << i;
      continue;
    }
    ASSERT_EQ(half[i], cpu(in[i])) << "input " << in[i];
    ASSERT_EQ(std::bit_cast<uint32_t>(back[i]), std::bit_cast<uint32_t>(cpu_back(half[i])));
  }
}

TEST_F(CudaCastTest, Float16MatchesCpuBitForBit) {
  RunBoth(HalfKind::kFloat16, FloatToHalf, HalfToFloat);
}
TEST_F(CudaCastTest, BFloat16MatchesCpuBitForBit) {
  RunBoth(HalfKind::kBFloat16, FloatToBFloat16, BFloat16ToFloat);
}

}  // namespace
}  // namespace amp
