// The cost model's arithmetic on a step small enough to count by hand.
#include "codegen/cost_model.h"

#include <gtest/gtest.h>

#include "compiler/loader.h"
#include "compiler/shape_inference.h"
#include "runtime/backend.h"

namespace amp {
namespace {

TEST(CostModelTest, CountsLaunchesFlopsBytesAndPeakByHand) {
  // x[8,32] (fp16) · w[32,16] (fp16) -> y[8,16]; Reshape is a view (no
  // launch); Relu reads and writes 8*16 halfs.
  auto m = LoadModelText(R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[8,32] x, float[32,16] w) => (float[128] z)
<int64[1] shape = {128}>
{
  y = MatMul (x, w)
  r = Reshape (y, shape)
  z = Relu (r)
})");
  ASSERT_TRUE(m.ok()) << m.status().message();
  // The same in fp16 (ONNX text has no fp16 literals).
  m->graph->FindValue("x")->mutable_type().dtype = DType::kFloat16;
  Tensor w16(DType::kFloat16, {32, 16});
  for (int64_t i = 0; i < w16.num_elements(); ++i) w16.SetDouble(i, 0.5);
  m->graph->FreezeInput(m->graph->FindValue("w"), w16);
  for (Node* n : m->graph->nodes()) n->output(0)->mutable_type().dtype = DType::kFloat16;
  Status inferred = RunShapeInference(*m);
  ASSERT_TRUE(inferred.ok()) << inferred.message();
  auto cpu = KernelSupportFor("cpu");
  ASSERT_TRUE(cpu.ok());
  SpecializeRequest req;
  req.input_dims = {{"x", {8, 32}}};
  auto exe = Specialize(*m, req, **cpu);
  ASSERT_TRUE(exe.ok()) << exe.status().message();
  DeviceModel d{"test", 1e12, 1e11, 1e9, 1e-6, "by hand"};
  StepCost c = EstimateCost(*exe, d);
  EXPECT_EQ(c.launches, 2);  // MatMul, Relu
  const int64_t mm_flops = 2 * 8 * 16 * 32, mm_bytes = (8 * 32 + 32 * 16 + 8 * 16) * 2;
  const int64_t relu_flops = 128, relu_bytes = 2 * 128 * 2;
  EXPECT_EQ(c.flops, mm_flops + relu_flops);
  EXPECT_EQ(c.bytes, mm_bytes + relu_bytes);
  ASSERT_EQ(c.kernels.size(), 2u);
  const KernelCost& mm = c.kernels[0].node->op_type() == "MatMul" ? c.kernels[0] : c.kernels[1];
  EXPECT_TRUE(mm.matrix);
  EXPECT_DOUBLE_EQ(mm.seconds, std::max(mm_flops / 1e12, mm_bytes / 1e9) + 1e-6);
  double relu_s = std::max(relu_flops / 1e11, relu_bytes / 1e9) + 1e-6;
  EXPECT_DOUBLE_EQ(c.predicted_s, mm.seconds + relu_s);
  // Peak: the arena (y, z: 256 bytes each, aligned to 64), the weight and
  // the shape constant, the input.
  EXPECT_EQ(c.arena_bytes, static_cast<int64_t>(exe->arena_bytes));
  EXPECT_EQ(c.state_bytes, 32 * 16 * 2 + 8);
  EXPECT_EQ(c.input_bytes, 8 * 32 * 2);
  EXPECT_EQ(c.peak_bytes, c.arena_bytes + c.state_bytes + c.input_bytes);
  nlohmann::json j = CostToJson(c, d, 1);
  EXPECT_EQ(j["launches"], 2);
  EXPECT_EQ(j["top_kernels"].size(), 1u);
  EXPECT_EQ(j["top_kernels"][0]["op"], c.kernels[0].node->op_type());
  EXPECT_EQ(j["launches_by_op"]["Relu"], 1);
  EXPECT_DOUBLE_EQ(j["predicted_ms_by_op"]["MatMul"].get<double>(), mm.seconds * 1e3);
  EXPECT_DOUBLE_EQ(j["predicted_ms_by_op"]["Relu"].get<double>(), relu_s * 1e3);
}

// A kernel that writes its result over its input (a fused elementwise node
// whose input dies there) shares the input's bytes like a view, but runs:
// it is a launch.
TEST(CostModelTest, AnInPlaceKernelIsALaunchAndAViewIsNot) {
  auto m = LoadModelText(R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[64,64] x, float[64,64] w) => (float[4096] z)
<int64[1] shape = {4096}>
{
  y = MatMul (x, w)
  a = Mul (y, y)
  b = Exp (a)
  z = Reshape (b, shape)
})");
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto cpu = KernelSupportFor("cpu");
  ASSERT_TRUE(cpu.ok());
  SpecializeRequest req;
  req.input_dims = {{"x", {64, 64}}, {"w", {64, 64}}};
  auto exe = Specialize(*m, req, **cpu);
  ASSERT_TRUE(exe.ok()) << exe.status().message();
  // MatMul, the fused Mul+Exp (written over y, which dies there), Reshape.
  ASSERT_EQ(exe->program.size(), 3u);
  const Slot& y = exe->slots[exe->Find("y")];
  const Slot& b = exe->slots[exe->Find("b")];
  EXPECT_EQ(y.offset, b.offset) << "the fused kernel writes over y";
  DeviceModel d{"test", 1e12, 1e11, 1e9, 1e-6, "by hand"};
  EXPECT_EQ(EstimateCost(*exe, d).launches, 2);  // MatMul, FusedElementwise; the Reshape is free
}

// The fused attention runs on the vector units in amp's kernels, and on the
// matrix engines where the CUDA backend runs it as cuDNN's (its layout fits
// and the backward reads the forward's O and stats): the rate and the
// launches follow the backend the step was specialized for.
TEST(CostModelTest, CudnnsAttentionIsCostedAtTheMatrixRate) {
  auto m = LoadModelText(R"(<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (float16[2,3,16,8] q, float16[2,3,16,8] k, float16[2,3,16,8] v, float16[2,3,16,8] d)
    => (float16[2,3,16,8] dq, float16[2,3,16,8] dk, float16[2,3,16,8] dv)
{
  o, st = ai.amp.Attention <alpha = 0.35, transB = 1> (q, k, v)
  dq, dk, dv = ai.amp.AttentionGrad <alpha = 0.35, grad_alpha = 0.35, transB = 1> (q, k, v, d, , o, st)
})");
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto cpu = KernelSupportFor("cpu");
  ASSERT_TRUE(cpu.ok());
  SpecializeRequest req;
  for (const char* x : {"q", "k", "v", "d"}) req.input_dims[x] = {2, 3, 16, 8};
  auto exe = Specialize(*m, req, **cpu);
  ASSERT_TRUE(exe.ok()) << exe.status().message();
  EXPECT_EQ(exe->backend, "cpu");
  DeviceModel dev{"test", 1e14, 1e12, 1e13, 1e-6, "by hand"};
  const int64_t qk = 2 * 2 * 3 * 16 * 16 * 8;  // one product over every slice
  auto check = [&](const StepCost& c, bool matrix, int grad_launches) {
    ASSERT_EQ(c.kernels.size(), 2u);
    for (const KernelCost& k : c.kernels) {
      bool grad = k.op == "AttentionGrad";
      SCOPED_TRACE(k.op);
      EXPECT_EQ(k.flops, grad ? 5 * qk : 2 * qk);
      EXPECT_EQ(k.matrix, matrix);
      EXPECT_EQ(k.library, matrix);
      EXPECT_EQ(k.launches, grad ? grad_launches : 1);
      double rate = matrix ? 1e14 : 1e12;
      EXPECT_DOUBLE_EQ(k.seconds, std::max(k.flops / rate, k.bytes / 1e13) + 1e-6 * k.launches);
    }
    EXPECT_EQ(c.launches, 1 + grad_launches);
  };
  check(EstimateCost(*exe, dev), false, 2);
  exe->backend = "cuda";
  check(EstimateCost(*exe, dev), true, 3);
}

TEST(CostModelTest, DeviceModelsAreNamed) {
  EXPECT_TRUE(FindDeviceModel("h100").ok());
  EXPECT_TRUE(FindDeviceModel("h200").ok());
  auto bad = FindDeviceModel("tpu");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("amp knows h200, h100"), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace amp
