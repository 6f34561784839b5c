// The runtime's pieces on their own: the memory plan never lets two live
// values share bytes, half kernels compute in FP32 and round once, and a
// Executor runs a text model and applies its update bindings.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "codegen/executable.h"
#include "codegen/memory_plan.h"
#include "compiler/loader.h"
#include "compiler/onnx_export.h"
#include "compiler/shape_inference.h"
#include "compiler/text.h"
#include "kernels/cpu/kernel.h"
#include "passes/pipelines.h"
#include "runtime/executor.h"

namespace amp {
namespace {

// An output its op may write over an input takes that input's bytes when
// the input dies there, and only then.
TEST(MemoryPlanTest, InPlaceOutputsTakeTheBytesOfInputsThatDieThere) {
  auto m = LoadModelText(R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[256] x) => (float[256] y, float[256] z)
{
  a = Relu (x)
  b = Exp (x)
  p = Neg (a)
  q = Neg (b)
  y = Add (p, b)
  z = Sigmoid (q)
}
)");
  ASSERT_TRUE(m.ok()) << m.status().message();
  std::vector<const Node*> order;
  for (const Node* n : m->graph->nodes()) order.push_back(n);
  auto in_arena = [](const Value* v) { return !v->is_graph_input(); };
  std::unordered_set<const Value*> keep(m->graph->outputs().begin(), m->graph->outputs().end());
  // Neg may write over its input.
  auto inplace = [](const Node& n) {
    return n.op_type() == "Neg" ? std::vector<std::pair<int, int>>{{0, 0}}
                                : std::vector<std::pair<int, int>>{};
  };
  MemoryPlan plan = PlanMemory(order, in_arena, keep, 64, inplace);
  const Graph& g = *m->graph;
  auto at = [&](const char* name) { return plan.offsets.at(g.FindValue(name)); };
  EXPECT_EQ(at("p"), at("a"));  // a's only reader is p's Neg: p takes its bytes
  EXPECT_NE(at("q"), at("b"));  // b is read again by y's Add: q needs its own
  EXPECT_EQ(plan.in_place, 1u);
  // Without the op's permission nothing is shared.
  MemoryPlan plain = PlanMemory(order, in_arena, keep);
  EXPECT_EQ(plain.in_place, 0u);
  EXPECT_NE(plain.offsets.at(g.FindValue("p")), plain.offsets.at(g.FindValue("a")));
}

TEST(MemoryPlanTest, LiveValuesNeverOverlapAndDeadOnesShare) {
  // A chain with fan-out: a feeds b and d, so a stays live until d.
  auto m = LoadModelText(R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[64,64] x) => (float[64,64] y)
{
  a = Relu (x)
  b = Exp (a)
  c = Neg (b)
  d = Add (a, c)
  e = Sigmoid (d)
  f = Tanh (e)
  y = Abs (f)
}
)");
  ASSERT_TRUE(m.ok()) << m.status().message();
  std::vector<const Node*> order;
  for (const Node* n : m->graph->nodes()) order.push_back(n);
  auto in_arena = [](const Value* v) { return !v->is_graph_input(); };
  std::unordered_set<const Value*> keep(m->graph->outputs().begin(), m->graph->outputs().end());
  MemoryPlan plan = PlanMemory(order, in_arena, keep);
  // Live ranges by position.
  std::map<const Value*, std::pair<size_t, size_t>> live;
  for (size_t i = 0; i < order.size(); ++i) {
    for (const Value* in : order[i]->inputs())
      if (live.count(in)) live[in].second = i;
    live[order[i]->output(0)] = {i, keep.count(order[i]->output(0)) ? order.size() : i};
  }
  const size_t bytes = 64 * 64 * 4;
  for (const auto& [v, r] : live)
    for (const auto& [w, s] : live) {
      if (v == w || r.first > s.second || s.first > r.second) continue;
      size_t a = plan.offsets.at(v), b = plan.offsets.at(w);
      EXPECT_TRUE(a + bytes <= b || b + bytes <= a) << v->name() << " and " << w->name();
    }
  EXPECT_EQ(plan.unshared_bytes, 7 * bytes);
  EXPECT_LE(plan.arena_bytes, 3 * bytes);  // at most three values are live at once
  EXPECT_GE(plan.arena_bytes, 2 * bytes);
}

TEST(MemoryPlanTest, ViewsShareTheirInputsBytesAndExtendItsLife) {
  auto m = LoadModelText(R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[8,8] x) => (float[8,8] y)
{
  a = Relu (x)
  shape = Constant <value = int64[1] {64}> ()
  flat = Reshape (a, shape)
  b = Exp (x)
  c = Neg (b)
  back = Constant <value = int64[2] {8, 8}> ()
  d = Reshape (flat, back)
  y = Add (c, d)
}
)");
  ASSERT_TRUE(m.ok()) << m.status().message();
  std::vector<const Node*> order;
  for (const Node* n : m->graph->nodes()) order.push_back(n);
  auto in_arena = [](const Value* v) {
    return !v->is_graph_input() && v->producer()->op_type() != "Constant";
  };
  std::unordered_set<const Value*> keep(m->graph->outputs().begin(), m->graph->outputs().end());
  MemoryPlan plan = PlanMemory(order, in_arena, keep);
  const Graph& g = *m->graph;
  EXPECT_EQ(plan.aliased, 2u);
  EXPECT_EQ(plan.offsets.at(g.FindValue("flat")), plan.offsets.at(g.FindValue("a")));
  EXPECT_EQ(plan.offsets.at(g.FindValue("d")), plan.offsets.at(g.FindValue("a")));
  // a lives (as d) until the Add, so b and c cannot take its bytes.
  for (const char* other : {"b", "c"})
    EXPECT_NE(plan.offsets.at(g.FindValue(other)), plan.offsets.at(g.FindValue("a"))) << other;
}

cpu::KernelFn Kernel(const char* op) { return cpu::FindKernel("", op); }

TEST(CpuKernelTest, HalfGemmAccumulatesInFp32AndRoundsOnce) {
  auto m = LoadModelText(R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float16[3,200] a, float16[200,2] b) => (float16[3,2] y)
{
  y = MatMul (a, b)
}
)");
  ASSERT_TRUE(m.ok()) << m.status().message();
  const Node& node = *m->graph->nodes()[0];
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-2.f, 2.f);
  std::vector<uint16_t> a(600), b(400), y(6, 0xffff);  // poisoned output
  for (auto& v : a) v = FloatToHalf(dist(rng));
  for (auto& v : b) v = FloatToHalf(dist(rng));
  TensorRef ta{DType::kFloat16, {3, 200}, a.data()}, tb{DType::kFloat16, {200, 2}, b.data()},
      ty{DType::kFloat16, {3, 2}, y.data()};
  KernelAttrs attrs(node);
  cpu::KernelContext ctx{attrs, {&ta, &tb}, {&ty}, 0};
  ASSERT_TRUE(Kernel("MatMul")(ctx).ok());
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j) {
      double ref = 0;  // float64 reference
      for (int k = 0; k < 200; ++k)
        ref += double(HalfToFloat(a[i * 200 + k])) * HalfToFloat(b[k * 2 + j]);
      float got = HalfToFloat(y[i * 2 + j]);
      // One rounding to fp16 at the end: within half an fp16 ulp (plus FP32
      // accumulation error, far smaller) of the exact sum.
      float ulp = std::ldexp(1.0f, std::ilogb(static_cast<float>(ref)) - 10);
      EXPECT_LE(std::abs(got - ref), 0.5 * ulp + 1e-4 * std::abs(ref)) << i << "," << j;
    }
}

TEST(CpuKernelTest, CastRoundsToNearestEvenWithInfNaNAndSubnormals) {
  auto m = LoadModelText(R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[6] x) => (float16[6] y)
{
  y = Cast <to = 10> (x)
}
)");
  ASSERT_TRUE(m.ok());
  std::vector<float> x = {1.0f + 0.00048828125f,      // tie: rounds to even (1.0)
                          1.0f + 3 * 0.00048828125f,  // tie: rounds up to even
                          65520.0f,                   // overflows to inf
                          std::nanf(""),
                          5.9604645e-08f /* smallest subnormal */,
                          -0.0f};
  std::vector<uint16_t> y(6, 0x1234);
  TensorRef tx{DType::kFloat32, {6}, x.data()}, ty{DType::kFloat16, {6}, y.data()};
  KernelAttrs attrs(*m->graph->nodes()[0]);
  cpu::KernelContext ctx{attrs, {&tx}, {&ty}, 0};
  ASSERT_TRUE(Kernel("Cast")(ctx).ok());
  EXPECT_EQ(y[0], 0x3c00);
  EXPECT_EQ(y[1], 0x3c02);
  EXPECT_EQ(y[2], 0x7c00);
  EXPECT_EQ(y[3] & 0x7c00, 0x7c00);
  EXPECT_NE(y[3] & 0x03ff, 0);
  EXPECT_EQ(y[4], 0x0001);
  EXPECT_EQ(y[5], 0x8000);
}

TEST(SessionTest, RunsAStepAndAppliesItsUpdates) {
  // w <- w - 0.5 * x, as a training_info step: after two steps w = 1 - 2*0.5*x.
  auto m = LoadModelText(R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[2] x) => (float[2] y)
<float[2] w = {1.0, 2.0}>
{
  y = Mul (x, w)
}
)");
  ASSERT_TRUE(m.ok()) << m.status().message();
  Graph& g = *m->graph;
  Value* half = g.AddScalar("half", DType::kFloat32, 0.5);
  Node* mul = g.AddNode("Mul", {g.inputs()[0], half}, {"delta"});
  Node* sub = g.AddNode("Sub", {g.FindValue("w"), mul->output(0)}, {"w_next"});
  g.AddOutput(sub->output(0));
  m->training.loss = "y";
  m->training.updates = {{"w", "w_next"}};
  m->training.forward_outputs = {{"y", DType::kFloat32}};
  m->training.trainable = {"w"};
  ASSERT_TRUE(RunShapeInference(*m).ok());
  std::string path = (std::filesystem::temp_directory_path() / "amp_session_test.onnx").string();
  Status saved = SaveModelFile(*m, path);
  ASSERT_TRUE(saved.ok()) << saved.message();
  auto s = Executor::Open(path);
  ASSERT_TRUE(s.ok()) << s.status().message();
  Tensor x = Tensor::FromVector<float>(DType::kFloat32, {2}, {0.25f, -1.0f});
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE((*s)->SetInput("x", x).ok());
    ASSERT_TRUE((*s)->Run().ok());
  }
  auto w = (*s)->Fetch("w");
  ASSERT_TRUE(w.ok());
  EXPECT_FLOAT_EQ(w->as<float>()[0], 1.0f - 2 * 0.5f * 0.25f);
  EXPECT_FLOAT_EQ(w->as<float>()[1], 2.0f + 2 * 0.5f);
  EXPECT_EQ((*s)->step(), 2);
  // y of the last step used the w from before it.
  auto y = (*s)->Fetch("y");
  ASSERT_TRUE(y.ok());
  EXPECT_FLOAT_EQ(y->as<float>()[1], -1.0f * (2.0f + 0.5f));
  // Bad bindings are refused by name: an unknown input, a wrong shape, and a
  // Run with an input left unbound.
  Status unknown = (*s)->SetInput("nope", x);
  EXPECT_NE(unknown.message().find("no input 'nope' (its inputs: x)"), std::string::npos)
      << unknown.message();
  Status shape = (*s)->SetInput("x", Tensor::FromVector<float>(DType::kFloat32, {3}, {1, 2, 3}));
  EXPECT_NE(shape.message().find("input 'x' has shape [3]"), std::string::npos) << shape.message();
  auto fresh = Executor::Open(path);
  ASSERT_TRUE(fresh.ok());
  Status unbound = (*fresh)->Run();
  EXPECT_NE(unbound.message().find("input 'x' (float[2]) is not bound"), std::string::npos)
      << unbound.message();
  // A wrong input type is refused by name.
  Status bad = (*s)->SetInput("x", Tensor::FromVector<int64_t>(DType::kInt64, {2}, {1, 2}));
  EXPECT_NE(bad.message().find("input 'x' is int64"), std::string::npos) << bad.message();
  std::filesystem::remove(path);
}

Tensor RandomTensor(const std::vector<int64_t>& dims, uint32_t seed) {
  Tensor t(DType::kFloat32, dims);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.SetDouble(i, u(rng));
  return t;
}

TEST(CloneModelTest, CopiesEverythingAndSharesNothingMutable) {
  auto m = LoadModelText(R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,3] x) => (float[N,3] y)
<float[3] w = {1.0, 2.0, 3.0}>
{
  z = Mul (x, w)
  y = Relu (z)
})");
  ASSERT_TRUE(m.ok()) << m.status().message();
  m->training.loss = "y";
  Model c = CloneModel(*m);
  EXPECT_EQ(PrintModel(c), PrintModel(*m));
  EXPECT_EQ(c.training.loss, "y");
  // Changing the copy leaves the original alone.
  c.graph->FindValue("w")->mutable_type().dtype = DType::kFloat16;
  c.graph->nodes()[1]->SetAttr("x", Attribute::Int(1));
  EXPECT_EQ(m->graph->FindValue("w")->dtype(), DType::kFloat32);
  EXPECT_FALSE(m->graph->nodes()[1]->HasAttr("x"));
}

TEST(ExecutableTest, SlotsProgramAndPlanForOneShape) {
  auto m = LoadModelText(R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,3] x) => (float[N,3] y)
<float[3] w = {1.0, 2.0, 3.0}>
{
  s = Shape (x)
  z = Mul (x, w)
  e = Exp (z)
  y = Relu (e)
})");
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto cpu = KernelSupportFor("cpu");
  ASSERT_TRUE(cpu.ok());
  SpecializeRequest r;
  r.input_dims = {{"x", {4, 3}}};
  r.fuse_elementwise = false;  // one call per op (fusion: fusion_test.cc)
  auto exe = Specialize(*m, r, **cpu);
  ASSERT_TRUE(exe.ok()) << exe.status().message();
  // The unused Shape is gone; three calls, every value a static slot.
  ASSERT_EQ(exe->program.size(), 3u);
  EXPECT_EQ(exe->program[0].node->op_type(), "Mul");
  EXPECT_EQ(exe->slots[exe->Find("x")].kind, SlotKind::kInput);
  EXPECT_EQ(exe->slots[exe->Find("w")].kind, SlotKind::kPersistent);
  EXPECT_EQ(exe->slots[exe->Find("z")].kind, SlotKind::kArena);
  EXPECT_EQ(exe->slots[exe->Find("y")].dims, (std::vector<int64_t>{4, 3}));
  // z dies when e is made, so z and y may share; the arena holds two values.
  EXPECT_EQ(exe->arena_bytes, 2u * 64);
  // The model given is not changed.
  EXPECT_FALSE(m->graph->outputs()[0]->type().has_static_shape());
  // A dim that disagrees between inputs, and a node with no kernel, are errors.
  r.input_dims = {{"x", {4}}};
  EXPECT_NE(Specialize(*m, r, **cpu).status().message().find("has shape [4]"), std::string::npos);
}

TEST(SessionTest, GradientNodesGoThroughTheCompilePathFirst) {
  auto m = LoadModelText(R"(
<ir_version: 8, opset_import: ["" : 17, "ai.onnx.preview.training" : 1]>
g (float[3] a, float[3] b) => (float[3] d, float[3] dd_da, float[3] dd_db)
{
  c = Add (a, b)
  d = Mul (c, a)
  dd_da, dd_db = ai.onnx.preview.training.Gradient <xs = ["a", "b"], y = "d"> (a, b)
})");
  ASSERT_TRUE(m.ok()) << m.status().message();
  ExecutorOptions fwd;
  fwd.mode = TrainingInfoMode::kForward;
  auto refused = Executor::Create(CloneModel(*m), fwd);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("compile the model with amp-compile first"),
            std::string::npos)
      << refused.status().message();
  ASSERT_TRUE(pipelines::Lower().Run(*m).ok());
  auto s = Executor::Create(std::move(*m), fwd);
  ASSERT_TRUE(s.ok()) << s.status().message();
  Tensor a = RandomTensor({3}, 1), b = RandomTensor({3}, 2);
  ASSERT_TRUE((*s)->SetInput("a", a).ok());
  ASSERT_TRUE((*s)->SetInput("b", b).ok());
  ASSERT_TRUE((*s)->Run().ok());
  auto da = (*s)->Fetch("dd_da");
  auto db = (*s)->Fetch("dd_db");
  ASSERT_TRUE(da.ok() && db.ok());
  for (int i = 0; i < 3; ++i) {
    double av = a.GetDouble(i), bv = b.GetDouble(i);
    EXPECT_NEAR(da->GetDouble(i), 2 * av + bv, 1e-6);  // d(a^2 + ab)/da
    EXPECT_NEAR(db->GetDouble(i), av, 1e-6);
  }
}

TEST(SessionTest, CachesOneExecutablePerInputShape) {
  auto m = LoadModelText(R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,3] x) => (float[N,3] y)
<float[3] w = {1.0, -2.0, 3.0}>
{
  z = Mul (x, w)
  y = Relu (z)
})");
  ASSERT_TRUE(m.ok()) << m.status().message();
  ExecutorOptions o;
  o.mode = TrainingInfoMode::kForward;
  o.poison = true;
  auto s = Executor::Create(std::move(*m), o);
  ASSERT_TRUE(s.ok()) << s.status().message();
  const float w[3] = {1.f, -2.f, 3.f};
  uint32_t seed = 10;
  for (int64_t n : {2, 5, 2, 5, 1}) {
    Tensor x = RandomTensor({n, 3}, seed++);
    ASSERT_TRUE((*s)->SetInput("x", x).ok());
    Status st = (*s)->Run();
    ASSERT_TRUE(st.ok()) << st.message();
    auto y = (*s)->Fetch("y");
    ASSERT_TRUE(y.ok());
    ASSERT_EQ(y->dims(), (std::vector<int64_t>{n, 3}));
    for (int64_t i = 0; i < n * 3; ++i)
      EXPECT_FLOAT_EQ(y->GetDouble(i),
                      std::max(0.f, static_cast<float>(x.GetDouble(i)) * w[i % 3]));
    EXPECT_EQ((*s)->memory().nodes, 1u);  // Mul and Relu: one fused kernel
  }
  EXPECT_EQ((*s)->cached_executables(), 3u);  // N = 2, 5, 1
}

// The fused Adam update writes the parameters and moments over the old ones
// (its record allows it, nothing reads the old values later): the arena
// holds none of them and nothing is copied after the step, and the state is
// bit for bit what the copying step gives.
TEST(SessionTest, FusedAdamUpdatesStateInPlace) {
  auto m = LoadModel(std::string(AMP_SOURCE_DIR) + "/models/mlp/model.onnx");
  ASSERT_TRUE(m.ok()) << m.status().message();
  pipelines::TrainingOptions t;
  t.optimizer.kind = "adamw";
  t.optimizer.lr = 0.01f;
  t.optimizer.weight_decay = 0.1f;  // an FP32 step: no loss scaling
  ASSERT_TRUE(pipelines::Training(t).Run(*m).ok());
  std::map<std::string, Tensor> state;
  size_t arena[2] = {0, 0};
  for (int copy = 0; copy < 2; ++copy) {
    ExecutorOptions o;
    o.fuse_optimizer = true;
    // The non-finite guard of an FP32 step runs in the step
    // (guard-nonfinite): the update stays in place.
    if (copy) o.non_finite = NonFinitePolicy::kError;
    auto s = Executor::Create(CloneModel(*m), o);
    ASSERT_TRUE(s.ok()) << s.status().message();
    Tensor x = RandomTensor({4, 64}, 3);
    Tensor y = Tensor::FromVector<int64_t>(DType::kInt64, {4}, {1, 7, 3, 0});
    Tensor lr(DType::kFloat32, {});
    lr.SetDouble(0, 0.01);
    for (int step = 0; step < 3; ++step) {
      ASSERT_TRUE((*s)->SetInput("input", x).ok());
      ASSERT_TRUE((*s)->SetInput("labels", y).ok());
      ASSERT_TRUE((*s)->SetInput("lr", lr).ok());
      Status st = (*s)->Run();
      ASSERT_TRUE(st.ok()) << st.message();
    }
    arena[copy] = (*s)->memory().arena_bytes;
    for (const std::string& name : (*s)->StateNames()) {
      auto v = (*s)->Fetch(name);
      ASSERT_TRUE(v.ok());
      if (!copy) {
        state[name] = *v;
        continue;
      }
      ASSERT_EQ(v->nbytes(), state[name].nbytes()) << name;
      EXPECT_EQ(std::memcmp(v->data(), state[name].data(), v->nbytes()), 0) << name;
    }
  }
  // In place either way: the arena does not hold the new parameters and
  // moments (three times the parameters' 3.4 KiB) with the guard either.
  EXPECT_LT(arena[1], arena[0] + 3 * 3000) << arena[0] << " vs " << arena[1];
}

// The guard in the step: a non-finite loss (a NaN input) skips the update
// (kSkip) or fails the step (kError), the state bit for bit as before it,
// though the update is written in place.
TEST(SessionTest, TheNonFiniteGuardSkipsInTheStep) {
  auto m = LoadModel(std::string(AMP_SOURCE_DIR) + "/models/mlp/model.onnx");
  ASSERT_TRUE(m.ok()) << m.status().message();
  pipelines::TrainingOptions t;
  t.optimizer.kind = "adam";
  t.optimizer.lr = 0.01f;
  ASSERT_TRUE(pipelines::Training(t).Run(*m).ok());
  for (NonFinitePolicy policy : {NonFinitePolicy::kSkip, NonFinitePolicy::kError}) {
    ExecutorOptions o;
    o.fuse_optimizer = true;
    o.non_finite = policy;
    auto s = Executor::Create(CloneModel(*m), o);
    ASSERT_TRUE(s.ok()) << s.status().message();
    Tensor x = RandomTensor({4, 64}, 3);
    Tensor y = Tensor::FromVector<int64_t>(DType::kInt64, {4}, {1, 7, 3, 0});
    Tensor lr(DType::kFloat32, {});
    lr.SetDouble(0, 0.01);
    auto run = [&](const Tensor& input) {
      EXPECT_TRUE((*s)->SetInput("input", input).ok());
      EXPECT_TRUE((*s)->SetInput("labels", y).ok());
      EXPECT_TRUE((*s)->SetInput("lr", lr).ok());
      return (*s)->Run();
    };
    ASSERT_TRUE(run(x).ok());  // one clean step: moments and step count move
    auto skipped = (*s)->StepSkipped();
    ASSERT_TRUE(skipped.ok());
    EXPECT_FALSE(*skipped);
    std::map<std::string, Tensor> before;
    for (const std::string& name : (*s)->StateNames()) before[name] = *(*s)->Fetch(name);
    Tensor bad = x;
    bad.SetDouble(5, std::nan(""));
    Status st = run(bad);
    if (policy == NonFinitePolicy::kError) {
      ASSERT_FALSE(st.ok());
      EXPECT_NE(st.message().find("is not finite, so the step was not applied"), std::string::npos)
          << st.message();
    } else {
      ASSERT_TRUE(st.ok()) << st.message();
      skipped = (*s)->StepSkipped();
      ASSERT_TRUE(skipped.ok());
      EXPECT_TRUE(*skipped);
    }
    for (const std::string& name : (*s)->StateNames()) {
      auto v = (*s)->Fetch(name);
      ASSERT_TRUE(v.ok());
      EXPECT_EQ(std::memcmp(v->data(), before[name].data(), v->nbytes()), 0) << name;
    }
    // The guard is the step's own (a skip flag in the specialized step), and
    // the next clean step applies.
    ASSERT_TRUE(run(x).ok());
    auto after = (*s)->Fetch((*s)->StateNames()[0]);
    ASSERT_TRUE(after.ok());
    EXPECT_NE(std::memcmp(after->data(), before[(*s)->StateNames()[0]].data(), after->nbytes()), 0);
  }
}

// transpose-folding against the unfused step, on random data: the GEMMs
// read the same elements through their flags, so every output is the same
// bit for bit (FP32 here; fp16 outputs round the same FP32 sums).
TEST(SessionTest, TransposeFoldingMatchesTheUnfoldedStep) {
  const char* text = R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,5,3] x, float[4,5] w, float[4,6] v) => (float[2,3,4] y, float[5,6] z, float[2,3,5] t)
{
  t = Transpose <perm = [0, 2, 1]> (x)
  wt = Transpose <perm = [1, 0]> (w)
  y = MatMul (t, wt)
  z = Gemm <transB = 0> (wt, v)
})";
  std::map<std::string, Tensor> out[2];
  for (int fold = 0; fold < 2; ++fold) {
    auto m = LoadModelText(text);
    ASSERT_TRUE(m.ok()) << m.status().message();
    ExecutorOptions o;
    o.mode = TrainingInfoMode::kForward;
    o.poison = true;
    if (!fold) o.disabled_passes.insert("transpose-folding");
    auto s = Executor::Create(std::move(*m), o);
    ASSERT_TRUE(s.ok()) << s.status().message();
    ASSERT_TRUE((*s)->SetInput("x", RandomTensor({2, 5, 3}, 21)).ok());
    ASSERT_TRUE((*s)->SetInput("w", RandomTensor({4, 5}, 22)).ok());
    ASSERT_TRUE((*s)->SetInput("v", RandomTensor({4, 6}, 23)).ok());
    Status st = (*s)->Run();
    ASSERT_TRUE(st.ok()) << st.message();
    // Folded: the MatMul and the Gemm read x and w in place; only the
    // Transpose that is itself an output is left.
    EXPECT_EQ((*s)->memory().nodes, fold ? 3u : 4u);
    for (const char* name : {"y", "z", "t"}) {
      auto v = (*s)->Fetch(name);
      ASSERT_TRUE(v.ok());
      out[fold][name] = *v;
    }
  }
  for (const auto& [name, a] : out[0]) {
    const Tensor& b = out[1].at(name);
    ASSERT_EQ(a.dims(), b.dims()) << name;
    for (int64_t i = 0; i < a.num_elements(); ++i) {
      ASSERT_TRUE(std::isfinite(a.GetDouble(i))) << name;
      EXPECT_EQ(a.GetDouble(i), b.GetDouble(i)) << name << "[" << i << "]";
    }
  }
}

// A state whose old value is itself another state's new value (a "previous
// weights" copy) is not updated in place: the copy after the step must read
// the old value.
TEST(ExecutableTest, AStateOtherStatesReadIsNotUpdatedInPlace) {
  auto m = LoadModel(std::string(AMP_SOURCE_DIR) + "/models/mlp/model.onnx");
  ASSERT_TRUE(m.ok()) << m.status().message();
  pipelines::TrainingOptions t;
  t.optimizer.kind = "adam";
  t.loss_scale = LossScaleOptions{};
  ASSERT_TRUE(pipelines::Training(t).Run(*m).ok());
  const std::string w = m->training.optimizer.params[0].param;
  const Value* wv = m->graph->FindValue(w);
  Value* prev = m->graph->AddInitializer("previous_w", *wv->initializer());
  m->graph->AddOutput(prev);  // read after the step, so kept
  m->training.updates.push_back({"previous_w", w});
  auto cpu = KernelSupportFor("cpu");
  ASSERT_TRUE(cpu.ok());
  SpecializeRequest r;
  r.input_dims = {{"input", {4, 64}}, {"labels", {4}}, {"lr", {}}};
  r.fuse_optimizer = true;
  auto exe = Specialize(*m, r, **cpu);
  ASSERT_TRUE(exe.ok()) << exe.status().message();
  int in_place = 0, w_in_place = 0;
  for (const Slot& s : exe->slots)
    if (s.kind == SlotKind::kPersistent && s.buffer != s.value->name()) {
      ++in_place;
      w_in_place += s.buffer == w;
    }
  EXPECT_GT(in_place, 0);    // the other parameters and moments still are
  EXPECT_EQ(w_in_place, 0);  // but not the one previous_w reads
}

// A second rank that is not there: its gradients are a fixed function of
// the element index, so the mean is known.
class FakeTwoRanks : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  Status AllReduceSum(float* data, size_t n) override {
    ++calls;
    floats += n;
    for (size_t i = 0; i < n; ++i) data[i] += Other(i);
    return Status::Ok();
  }
  Status Broadcast(void*, size_t, int) override { return Status::Ok(); }
  static float Other(size_t i) { return 0.25f * static_cast<float>(i % 7) - 0.5f; }
  int calls = 0;
  size_t floats = 0;
};

// ai.amp AllReduce packs its bucket into one collective call and writes the
// mean over the ranks into each output; without a communicator it copies.
TEST(ExecutorTest, AllReduceTakesTheMeanOverTheRanksInOneCall) {
  auto m = LoadModelText(R"(
<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (float[3,5] a, float[4] b) => (float[3,5] ra, float[4] rb)
{
  ra, rb = ai.amp.AllReduce (a, b)
}
)");
  ASSERT_TRUE(m.ok()) << m.status().message();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-2, 2);
  Tensor a(DType::kFloat32, {3, 5}), b(DType::kFloat32, {4});
  for (int64_t i = 0; i < 15; ++i) a.SetDouble(i, u(rng));
  for (int64_t i = 0; i < 4; ++i) b.SetDouble(i, u(rng));
  for (bool two : {true, false}) {
    FakeTwoRanks comm;
    ExecutorOptions o;
    o.poison = true;
    o.comm = two ? &comm : nullptr;
    auto e = Executor::Create(CloneModel(*m), o);
    ASSERT_TRUE(e.ok()) << e.status().message();
    ASSERT_TRUE((*e)->SetInput("a", a).ok());
    ASSERT_TRUE((*e)->SetInput("b", b).ok());
    ASSERT_TRUE((*e)->Run().ok());
    auto ra = (*e)->Fetch("ra"), rb = (*e)->Fetch("rb");
    ASSERT_TRUE(ra.ok() && rb.ok());
    for (int64_t i = 0; i < 15; ++i) {
      double want = two ? (a.GetDouble(i) + FakeTwoRanks::Other(i)) / 2 : a.GetDouble(i);
      EXPECT_NEAR(ra->GetDouble(i), want, 1e-6) << i;
    }
    for (int64_t i = 0; i < 4; ++i) {
      double want = two ? (b.GetDouble(i) + FakeTwoRanks::Other(15 + i)) / 2 : b.GetDouble(i);
      EXPECT_NEAR(rb->GetDouble(i), want, 1e-6) << i;
    }
    if (two) {
      EXPECT_EQ(comm.calls, 1);  // one bucket, one collective
      EXPECT_EQ(comm.floats, 19u);
    }
  }
}

// An input bound from the backend's own memory (a CUDA pointer on "cuda";
// on the CPU, host memory read at Run) gives the same step as a host copy,
// and is checked the same way.
TEST(ExecutorTest, InputsFromDeviceMemoryRunLikeHostCopies) {
  auto m = LoadModelText(R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,3] x) => (float[N,3] y)
{
  y = Tanh (x)
}
)");
  ASSERT_TRUE(m.ok()) << m.status().message();
  std::vector<float> x = {-1.5f, 0.25f, 2.0f, 0.75f, -0.5f, 3.0f};
  auto host = Executor::Create(CloneModel(*m));
  auto device = Executor::Create(CloneModel(*m));
  ASSERT_TRUE(host.ok() && device.ok());
  ASSERT_TRUE((*host)->SetInput("x", Tensor::FromVector(DType::kFloat32, {2, 3}, x)).ok());
  ASSERT_TRUE((*device)->SetInputOnDevice("x", DType::kFloat32, {2, 3}, x.data()).ok());
  ASSERT_TRUE((*host)->Run().ok());
  ASSERT_TRUE((*device)->Run().ok());
  auto a = (*host)->Fetch("y"), b = (*device)->Fetch("y");
  ASSERT_TRUE(a.ok() && b.ok());
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(a->GetDouble(i), b->GetDouble(i));
    EXPECT_NEAR(b->GetDouble(i), std::tanh(static_cast<double>(x[i])), 1e-6);
  }
  EXPECT_FALSE((*device)->SetInputOnDevice("x", DType::kFloat64, {2, 3}, x.data()).ok());
  EXPECT_FALSE((*device)->SetInputOnDevice("x", DType::kFloat32, {2, 4}, x.data()).ok());
  EXPECT_FALSE((*device)->SetInputOnDevice("x", DType::kFloat32, {2, 3}, nullptr).ok());
  EXPECT_FALSE(
      (*device)->SetInputOnDevice("x", DType::kFloat32, {int64_t{1} << 62, 3}, x.data()).ok());
}

}  // namespace
}  // namespace amp
