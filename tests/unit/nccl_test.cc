// The NCCL path of data-parallel steps on GPUs (runtime/nccl_communicator.h):
// the library loads here without a GPU (it is opened at run time); without a
// GPU joining fails with a message; with one, a one-rank job's device
// all-reduce (the smoke test the lent GPU runs) computes the mean, and the
// CUDA backend refuses a host-memory communicator.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <vector>

#include "runtime/backend.h"
#include "runtime/nccl_communicator.h"
#include "runtime/tcp_communicator.h"

namespace amp {
namespace {

std::unique_ptr<Communicator> Alone() {
  auto c = CreateTcpCommunicator(TcpOptions{});  // rank 0 of 1: no network
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? std::move(*c) : nullptr;
}

bool HaveGpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

TEST(NcclTest, TheLibraryLoadsWithoutAGpu) {
#ifndef AMP_NCCL_LIBRARY_PATH
  GTEST_SKIP() << "the build found no libnccl to check against";
#else
  auto v = NcclVersion();
  ASSERT_TRUE(v.ok()) << v.status().message() << " (build found " AMP_NCCL_LIBRARY_PATH ")";
  EXPECT_GE(*v, 20000);  // NCCL 2.x: MAJOR*10000 + MINOR*100 + PATCH
#endif
}

TEST(NcclTest, RefusesWhatCannotWork) {
  EXPECT_FALSE(CreateNcclCommunicator(nullptr, 0, 10).ok());
  EXPECT_FALSE(CreateNcclCommunicator(Alone(), -1, 10).ok());
  EXPECT_FALSE(CreateNcclCommunicator(Alone(), 0, 0).ok());
  auto far = CreateNcclCommunicator(Alone(), 4096, 10);
  ASSERT_FALSE(far.ok());
  if (!HaveGpu()) {
    EXPECT_NE(far.status().message().find("no usable GPU"), std::string::npos)
        << far.status().message();
  } else {
    EXPECT_NE(far.status().message().find("is local rank 4096"), std::string::npos)
        << far.status().message();
  }
}

TEST(NcclTest, OneRankAllReduceOnTheDevice) {
  if (!HaveGpu()) GTEST_SKIP() << "no GPU here";
  auto comm = CreateNcclCommunicator(Alone(), 0, 60);
  ASSERT_TRUE(comm.ok()) << comm.status().message();
  ASSERT_TRUE((*comm)->has_device_collectives());
  constexpr size_t kN = 1000;
  std::vector<float> host(kN), back(kN, -1.0f);
  for (size_t i = 0; i < kN; ++i) host[i] = 0.25f * static_cast<float>(i) - 7.0f;
  float *in = nullptr, *out = nullptr;
  ASSERT_EQ(cudaMalloc(&in, kN * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&out, kN * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(in, host.data(), kN * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemset(out, 0xff, kN * sizeof(float)), cudaSuccess);  // poisoned: NaN
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  Communicator::DeviceBuffer b{in, out, kN};
  Status s = (*comm)->DeviceAllReduceMean(&b, 1, stream);
  ASSERT_TRUE(s.ok()) << s.message();
  s = (*comm)->DeviceWait(stream);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(cudaMemcpy(back.data(), out, kN * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(back, host);  // the mean over one rank
  cudaStreamDestroy(stream);
  cudaFree(in);
  cudaFree(out);
}

TEST(NcclTest, TheCudaBackendRefusesAHostCommunicator) {
  auto backend = CreateBackend("cuda");
  if (!backend.ok()) GTEST_SKIP() << "no GPU here: " << backend.status().message();
  auto host = Alone();
  Status s = (*backend)->SetCommunicator(host.get());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("host memory only"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace amp
