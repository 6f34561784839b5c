// Every op of the CUDA backend against the CPU reference (as ggml's
// test-backend-ops does): one small graph per case, fresh random inputs, the
// arena poisoned with NaN before the run, every output compared with an
// error bound per element type. Skips, saying why, where no GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "runtime/backend.h"
#include "runtime/executor.h"
#include "tests/unit/op_cases.h"

namespace amp {
namespace {

bool HaveGpu(std::string* why) {
  auto b = CreateBackend("cuda");
  if (b.ok()) return true;
  *why = b.status().message();
  return false;
}

double Tolerance(DType t) {
  switch (t) {
    case DType::kFloat16:
      return 4e-3;
    case DType::kBFloat16:
      return 2e-2;
    default:
      return 2e-5;
  }
}

class CudaBackendTest : public ::testing::TestWithParam<Case> {};

TEST_P(CudaBackendTest, MatchesCpu) {
  std::string why;
  if (!HaveGpu(&why)) GTEST_SKIP() << "no GPU here: " << why;
  const Case& c = GetParam();
  auto path =
      std::filesystem::temp_directory_path() / (std::string("amp_cuda_") + c.name + ".onnxtxt");
  {
    std::ofstream f(path);
    f << "<ir_version: 8, opset_import: [\"\" : " << c.opset << ", \"ai.amp\" : 1]>\n"
      << c.text << "\n";
  }
  ExecutorOptions cpu_opts, gpu_opts;
  cpu_opts.mode = gpu_opts.mode = TrainingInfoMode::kForward;
  cpu_opts.poison = gpu_opts.poison = true;
  gpu_opts.device = "cuda";
  auto cpu = Executor::Open(path.string(), cpu_opts);
  ASSERT_TRUE(cpu.ok()) << cpu.status().message();
  auto gpu = Executor::Open(path.string(), gpu_opts);
  ASSERT_TRUE(gpu.ok()) << gpu.status().message();
  std::mt19937 rng(std::hash<std::string>{}(c.name));
  for (int round = 0; round < 2; ++round) {  // fresh inputs each round
    for (const Value* in : (*cpu)->model().graph->inputs()) {
      Tensor t = Random(*in, rng);
      ASSERT_TRUE((*cpu)->SetInput(in->name(), t).ok());
      ASSERT_TRUE((*gpu)->SetInput(in->name(), t).ok());
    }
    Status a = (*cpu)->Run();
    ASSERT_TRUE(a.ok()) << a.message();
    Status b = (*gpu)->Run();
    ASSERT_TRUE(b.ok()) << b.message();
    for (const Value* out : (*cpu)->model().graph->outputs()) {
      auto want = (*cpu)->Fetch(out->name());
      auto got = (*gpu)->Fetch(out->name());
      ASSERT_TRUE(want.ok() && got.ok());
      ASSERT_EQ(want->dims(), got->dims());
      double tol = Tolerance(out->dtype());
      for (int64_t i = 0; i < want->num_elements(); ++i) {
        double w = want->GetDouble(i), g = got->GetDouble(i);
        if (std::isnan(w)) {
          EXPECT_TRUE(std::isnan(g)) << out->name() << "[" << i << "]";
          continue;
        }
        ASSERT_FALSE(std::isnan(g)) << out->name() << "[" << i << "] was not written (or NaN)";
        EXPECT_LE(std::abs(g - w), tol * (1 + std::abs(w)))
            << c.name << ": " << out->name() << "[" << i << "] gpu " << g << " cpu " << w;
      }
    }
  }
  std::filesystem::remove(path);
}

INSTANTIATE_TEST_SUITE_P(Ops, CudaBackendTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace amp
