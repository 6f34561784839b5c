// The CPU kernels against a higher-precision reference: every graph of
// op_cases.h runs as written (fp32, fp16 and bf16 storage, FP32 arithmetic)
// and again with every float type replaced by float64, on the same random
// inputs (the fp64 run reads the already-rounded values, so the comparison
// measures the kernels' error, not the inputs' rounding). The arena is
// poisoned with NaN first. Bounds: a few units in the last place of the
// output type.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "runtime/executor.h"
#include "tests/unit/op_cases.h"

namespace amp {
namespace {

// Cases that a float64 copy cannot express: explicit casts to a 16-bit type
// (their result type is the point), LayerNormalization's float statistics,
// and the ai.amp nodes, which are float32 by definition.
bool HasDoubleTwin(const Case& c) {
  std::string t = c.text;
  return t.find("Cast <to = 1") == std::string::npos && t.find("stash_type") == std::string::npos &&
         t.find("ai.amp.") == std::string::npos && std::string(c.name) != "pow_max_min_sum_bf16";
}

std::string ToDouble(const std::string& text) {
  return std::regex_replace(text, std::regex(R"(\b(bfloat16|float16|float)\b)"), "double");
}

double Ulp(DType t) {
  switch (t) {
    case DType::kFloat16:
      return 1.0 / 1024;
    case DType::kBFloat16:
      return 1.0 / 128;
    default:
      return 1.0 / (1 << 23);
  }
}

std::string Write(const std::string& name, const std::string& text, int opset) {
  auto path = std::filesystem::temp_directory_path() / ("amp_cpu_kernel_" + name + ".onnxtxt");
  std::ofstream f(path);
  f << "<ir_version: 8, opset_import: [\"\" : " << opset << ", \"ai.amp\" : 1]>\n" << text << "\n";
  return path.string();
}

Tensor AsDouble(const Tensor& t) {
  if (!IsFloat(t.dtype())) return t;
  Tensor d(DType::kFloat64, t.dims());
  for (int64_t i = 0; i < t.num_elements(); ++i) d.SetDouble(i, t.GetDouble(i));
  return d;
}

class CpuKernelTest : public ::testing::TestWithParam<Case> {};

TEST_P(CpuKernelTest, MatchesFloat64) {
  const Case& c = GetParam();
  if (!HasDoubleTwin(c)) GTEST_SKIP() << c.name << " has no float64 twin (see HasDoubleTwin)";
  ExecutorOptions opts;
  opts.mode = TrainingInfoMode::kForward;
  opts.poison = true;
  std::string low_path = Write(c.name, c.text, c.opset);
  std::string ref_path = Write(std::string(c.name) + "_f64", ToDouble(c.text), c.opset);
  auto low = Executor::Open(low_path, opts);
  ASSERT_TRUE(low.ok()) << low.status().message();
  // The reference runs the graph as written: no specialization fusion
  // (transpose-folding would put the same flagged GEMM on both sides).
  ExecutorOptions ref_opts = opts;
  ref_opts.disabled_passes.insert("transpose-folding");
  auto ref = Executor::Open(ref_path, ref_opts);
  ASSERT_TRUE(ref.ok()) << ref.status().message();
  std::mt19937 rng(std::hash<std::string>{}(c.name) + 1);
  int compared = 0;
  for (int round = 0; round < 2; ++round) {
    for (const Value* in : (*low)->model().graph->inputs()) {
      Tensor t = Random(*in, rng);
      ASSERT_TRUE((*low)->SetInput(in->name(), t).ok());
      ASSERT_TRUE((*ref)->SetInput(in->name(), AsDouble(t)).ok());
    }
    Status a = (*low)->Run();
    ASSERT_TRUE(a.ok()) << a.message();
    Status b = (*ref)->Run();
    ASSERT_TRUE(b.ok()) << b.message();
    for (const Value* out : (*low)->model().graph->outputs()) {
      auto got = (*low)->Fetch(out->name());
      auto want = (*ref)->Fetch(out->name());
      ASSERT_TRUE(got.ok() && want.ok());
      ASSERT_EQ(got->dims(), want->dims());
      // Several roundings in a chain (and FP32 sums) may each cost an ulp.
      double tol = IsFloat(out->dtype()) ? 8 * Ulp(out->dtype()) : 0;
      for (int64_t i = 0; i < want->num_elements(); ++i) {
        double w = want->GetDouble(i), g = got->GetDouble(i);
        ASSERT_FALSE(std::isnan(g) && !std::isnan(w)) << out->name() << "[" << i << "] unwritten";
        if (std::isnan(w)) continue;
        EXPECT_LE(std::abs(g - w), tol * (1 + std::abs(w)))
            << c.name << ": " << out->name() << "[" << i << "] " << g << " vs float64 " << w;
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 0);
  std::filesystem::remove(low_path);
  std::filesystem::remove(ref_path);
}

INSTANTIATE_TEST_SUITE_P(Ops, CpuKernelTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace amp
