// fuse-elementwise against the unfused graph, on random data (outputs
// poisoned first): every op a fused program may hold, in float32, float16
// and bfloat16 chains with broadcasting, gives the unfused ops' values bit
// for bit; so do the shipped models' O1 training steps, state after state.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>

#include "codegen/executable.h"
#include "compiler/loader.h"
#include "kernels/cpu/families.h"
#include "ops/attention.h"
#include "ops/fused_elementwise.h"
#include "passes/loss_scaling.h"
#include "passes/pipelines.h"
#include "runtime/executor.h"
#include "tests/unit/op_cases.h"

namespace amp {
namespace {

// A chain around `op` in element type `t`: x, y [3,17] and z [17] (it
// broadcasts), the op between two other fusable ops so that it is an inner
// instruction. Empty when the op needs a form written below.
std::string ChainFor(std::string_view op, const std::string& t) {
  std::string o(op);
  std::string head = "g (" + t + "[3,17] x, " + t + "[3,17] y, " + t + "[17] z) => (" + t +
                     "[3,17] out)\n{\n  a = Mul (x, y)\n";
  std::string attrs;
  if (op == "LeakyRelu") attrs = " <alpha = 0.3>";
  if (op == "Elu") attrs = " <alpha = 0.7>";
  if (op == "HardSigmoid") attrs = " <alpha = 0.3, beta = 0.4>";
  if (op == "Gelu") attrs = " <approximate = \"tanh\">";
  const FusableOp* f = FindFusableOp(op);
  if (op == "Cast") {
    std::string other = t == "float" ? "10" : "1";
    std::string back = t == "float" ? "1" : (t == "float16" ? "10" : "16");
    return head + "  b = Cast <to = " + other + "> (a)\n  c = Cast <to = " + back +
           "> (b)\n  out = Add (c, z)\n}";
  }
  if (op == "Equal" || op == "Greater" || op == "GreaterOrEqual" || op == "Less" ||
      op == "LessOrEqual")
    return head + "  c = " + o + " (a, z)\n  out = Where (c, a, x)\n}";
  if (op == "And" || op == "Or" || op == "Xor")
    return head + "  c1 = Less (a, y)\n  c2 = Greater (a, z)\n  c = " + o +
           " (c1, c2)\n  out = Where (c, a, y)\n}";
  if (op == "Not") return head + "  c1 = Less (a, z)\n  c = Not (c1)\n  out = Where (c, a, y)\n}";
  if (op == "IsNaN") return head + "  b = Log (a)\n  c = IsNaN (b)\n  out = Where (c, x, b)\n}";
  if (op == "IsInf")
    return head +
           "  s = Sub (a, a)\n  b = Reciprocal (s)\n  c = IsInf <detect_negative = 0> (b)\n"
           "  out = Where (c, x, b)\n}";
  if (op == "Where") return head + "  c = Less (a, z)\n  b = Where (c, a, z)\n  out = Neg (b)\n}";
  if (op == "Sum") return head + "  b = Sum (a, z, x)\n  out = Add (b, y)\n}";
  if (f->max_args == 1) return head + "  b = " + o + attrs + " (a)\n  out = Add (b, z)\n}";
  if (f->max_args == 2) return head + "  b = " + o + " (a, z)\n  out = Add (b, x)\n}";
  return "";
}

Tensor Random(DType t, const std::vector<int64_t>& dims, std::mt19937& rng) {
  Tensor v(t, dims);
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  for (int64_t i = 0; i < v.num_elements(); ++i) {
    float x = u(rng);
    if (i % 11 == 3) x = 0;  // exact zeros: Div, Log, Reciprocal at their edges
    v.SetDouble(i, x);
  }
  return v;
}

struct Run {
  std::map<std::string, Tensor> outputs;
  size_t nodes = 0;
};

StatusOr<Run> RunGraph(const std::string& text, bool fuse, uint32_t seed) {
  AMP_ASSIGN_OR_RETURN(Model m, LoadModelText(text));
  ExecutorOptions o;
  o.mode = TrainingInfoMode::kForward;
  o.poison = true;
  if (!fuse) o.disabled_passes.insert("fuse-elementwise");
  // The chains' Casts are what is tested: specialization's fold-casts would
  // take an exact round trip away.
  o.disabled_passes.insert("fold-casts");
  AMP_ASSIGN_OR_RETURN(auto s, Executor::Create(std::move(m), o));
  std::mt19937 rng(seed);
  for (const Value* in : s->model().graph->inputs())
    AMP_RETURN_IF_ERROR(
        s->SetInput(in->name(), Random(in->dtype(), *StaticDims(*in->type().shape), rng)));
  AMP_RETURN_IF_ERROR(s->Run());
  Run r;
  r.nodes = s->memory().nodes;
  for (const Value* out : s->model().graph->outputs()) {
    AMP_ASSIGN_OR_RETURN(Tensor t, s->Fetch(out->name()));
    r.outputs[out->name()] = t;
  }
  return r;
}

TEST(FuseElementwiseTest, EveryFusableOpGivesTheUnfusedValuesBitForBit) {
  int checked = 0;
  for (const FusableOp& f : FusableOps())
    for (const char* t : {"float", "float16", "bfloat16"}) {
      std::string chain = ChainFor(f.op, t);
      ASSERT_FALSE(chain.empty()) << f.op;
      std::string text = "<ir_version: 8, opset_import: [\"\" : 20]>\n" + chain;
      SCOPED_TRACE(std::string(f.op) + " in " + t);
      auto plain = RunGraph(text, false, 7);
      // ONNX's type constraints leave some ops without bfloat16 (Sin, ...).
      if (!plain.ok() && plain.status().message().find(" takes ") != std::string::npos) continue;
      ASSERT_TRUE(plain.ok()) << plain.status().message();
      auto fused = RunGraph(text, true, 7);
      ASSERT_TRUE(fused.ok()) << fused.status().message();
      EXPECT_EQ(fused->nodes, 1u) << "the chain is one fused node";
      EXPECT_GE(plain->nodes, 3u);
      for (const auto& [name, want] : plain->outputs) {
        const Tensor& got = fused->outputs.at(name);
        ASSERT_EQ(got.nbytes(), want.nbytes());
        EXPECT_EQ(std::memcmp(got.data(), want.data(), want.nbytes()), 0) << name;
      }
      ++checked;
    }
  EXPECT_GT(checked, 2 * static_cast<int>(FusableOps().size()));
}

// The interpreter runs every op the pass may put in a program.
TEST(FuseElementwiseTest, TheCpuInterpreterKnowsEveryFusableOp) {
  std::vector<std::string> ops = cpu::FusedKernelOps();
  for (const FusableOp& f : FusableOps())
    EXPECT_NE(std::find(ops.begin(), ops.end(), std::string(f.op)), ops.end()) << f.op;
}

// A program the decoder refuses: a register read before it is written, an
// op no program holds, an integer type.
TEST(FuseElementwiseTest, MalformedProgramsAreErrors) {
  const char* base = R"(<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (float[4] x) => (float[4] y)
{
  y = ai.amp.FusedElementwise <args = [ARGS], ops = [OPS], params = [0.0, 0.0], results = [1], types = [TYPE]> (x)
})";
  struct Bad {
    const char* args;
    const char* ops;
    const char* type;
    const char* message;
  } cases[] = {
      {"1, -1, -1", "\"Neg\"", "1", "not written before it"},
      {"0, -1, -1", "\"MatMul\"", "1", "cannot be fused"},
      {"0, -1, -1", "\"Neg\"", "7", "has type 7"},
      {"0, 0, -1", "\"Neg\"", "1", "has 2 arguments"},
  };
  for (const Bad& b : cases) {
    std::string text = base;
    text.replace(text.find("ARGS"), 4, b.args);
    text.replace(text.find("OPS"), 3, b.ops);
    text.replace(text.find("TYPE"), 4, b.type);
    auto m = LoadModelText(text);
    ASSERT_FALSE(m.ok()) << b.message;
    EXPECT_NE(m.status().message().find(b.message), std::string::npos) << m.status().message();
  }
}

// The shipped models' O1 Adam steps with dynamic loss scaling: with
// fuse-elementwise, batch-casts, fuse-norm-grad (tfm has LayerNorms),
// fuse-attention (and tfm's attention) and rematerialize the
// state after three steps is the unfused step's, bit for bit, and fusion
// removed launches.
TEST(FuseElementwiseTest, ShippedO1StepsMatchTheUnfusedStepsBitForBit) {
  for (const char* model : {"mlp", "cnn", "tfm"}) {
    SCOPED_TRACE(model);
    auto m = LoadModel(std::string(AMP_SOURCE_DIR) + "/models/" + model + "/model.onnx");
    ASSERT_TRUE(m.ok()) << m.status().message();
    pipelines::TrainingOptions t;
    t.optimizer.kind = "adam";
    t.optimizer.lr = 0.01f;
    t.loss_scale = LossScaleOptions{};
    PassPipeline p = pipelines::Lower();
    p.Append(pipelines::Training(t));
    PrecisionPolicy policy;
    policy.level = OptLevel::kO1;
    p.Append(pipelines::ForLevel(policy));
    ASSERT_TRUE(p.Run(*m).ok());
    std::map<std::string, Tensor> state;
    size_t nodes[2] = {0, 0};
    for (int fuse = 0; fuse < 2; ++fuse) {
      ExecutorOptions o;
      o.fuse_optimizer = true;
      o.poison = true;
      if (!fuse)
        o.disabled_passes = {"fuse-elementwise", "batch-casts", "fuse-norm-grad", "rematerialize",
                             "fuse-attention"};
      auto s = Executor::Create(CloneModel(*m), o);
      ASSERT_TRUE(s.ok()) << s.status().message();
      std::mt19937 rng(5);
      for (int step = 0; step < 3; ++step) {
        for (const Value* in : (*s)->model().graph->inputs()) {
          std::vector<int64_t> dims;
          for (const Dim& d : *in->type().shape) dims.push_back(d.is_static() ? d.value() : 4);
          Tensor v(in->dtype(), dims);
          if (in->name() == "lr") {
            v.SetDouble(0, 0.01);
          } else if (IsFloat(in->dtype())) {
            v = Random(in->dtype(), dims, rng);
          } else {
            for (int64_t i = 0; i < v.num_elements(); ++i) v.SetDouble(i, (i * 7 + step) % 10);
          }
          ASSERT_TRUE((*s)->SetInput(in->name(), v).ok()) << in->name();
        }
        Status st = (*s)->Run();
        ASSERT_TRUE(st.ok()) << st.message();
      }
      nodes[fuse] = (*s)->memory().nodes;
      int compared = 0;
      for (const std::string& name : (*s)->StateNames()) {
        auto v = (*s)->Fetch(name);
        ASSERT_TRUE(v.ok()) << name;
        if (!fuse) {
          state[name] = *v;
          continue;
        }
        ASSERT_EQ(v->nbytes(), state[name].nbytes()) << name;
        EXPECT_EQ(std::memcmp(v->data(), state[name].data(), v->nbytes()), 0) << name;
        ++compared;
      }
      if (fuse) {
        EXPECT_GT(compared, 3);
      }
    }
    EXPECT_LT(nodes[1], nodes[0]) << "fusion removed no launch";
  }
}

StatusOr<Run> RunWith(const std::string& text, const std::set<std::string, std::less<>>& disabled,
                      uint32_t seed) {
  AMP_ASSIGN_OR_RETURN(Model m, LoadModelText(text));
  ExecutorOptions o;
  o.mode = TrainingInfoMode::kForward;
  o.poison = true;
  o.disabled_passes = disabled;
  AMP_ASSIGN_OR_RETURN(auto s, Executor::Create(std::move(m), o));
  std::mt19937 rng(seed);
  for (const Value* in : s->model().graph->inputs())
    AMP_RETURN_IF_ERROR(
        s->SetInput(in->name(), Random(in->dtype(), *StaticDims(*in->type().shape), rng)));
  AMP_RETURN_IF_ERROR(s->Run());
  Run r;
  r.nodes = s->memory().nodes;
  for (const Value* out : s->model().graph->outputs()) {
    AMP_ASSIGN_OR_RETURN(Tensor t, s->Fetch(out->name()));
    r.outputs[out->name()] = t;
  }
  return r;
}

// fold-into-gemm against the unfolded ops on random data. The bounds: a
// half GEMM whose Cast to FP32 folds stores its FP32 accumulation unrounded
// (within half an fp16 ulp of the rounded value); a transposed product sums
// the same terms in an order BLAS chooses (a few FP32 ulps); power-of-two
// scales are exact.
TEST(FoldIntoGemmTest, MatchesTheUnfoldedOpsWithinTheirBounds) {
  struct Case {
    const char* text;
    double rel;  // bound, relative to max(|want|, 1)
    size_t folded_nodes;
  } cases[] = {
      {R"(g (float16[64,40] dy, float16[64,48] x) => (float[48,40] dw)
{
  g16 = Gemm <transA = 1> (dy, x)
  g32 = Cast <to = 1> (g16)
  dw = Transpose <perm = [1, 0]> (g32)
})",
       1.0 / 2048, 1},
      {R"(h (float[2,30,16] q, float[2,20,16] k, float[2,30,20] d) => (float[2,30,20] s, float[2,20,16] dk)
{
  half = Constant <value = float {0.5}> ()
  qs = Mul (q, half)
  kt = Transpose <perm = [0, 2, 1]> (k)
  p = MatMul (qs, kt)
  s = Mul (p, half)
  dt = Transpose <perm = [0, 2, 1]> (d)
  dk = MatMul (dt, qs)
})",
       4e-7, 2},
      {R"(k (float[32,24] a, float[24,16] b) => (float[16,32] y)
{
  third = Constant <value = float {0.3333}> ()
  p = MatMul (a, b)
  t = Transpose <perm = [1, 0]> (p)
  y = Mul (t, third)
})",
       // the scale applied to the FP32 sum, rounded once: an ulp or two
       4e-7, 1},
  };
  for (const Case& c : cases) {
    std::string text = std::string("<ir_version: 8, opset_import: [\"\" : 17]>\n") + c.text;
    SCOPED_TRACE(text);
    auto folded = RunWith(text, {"fuse-elementwise"}, 3);
    ASSERT_TRUE(folded.ok()) << folded.status().message();
    auto plain = RunWith(text, {"fuse-elementwise", "fold-into-gemm"}, 3);
    ASSERT_TRUE(plain.ok()) << plain.status().message();
    EXPECT_EQ(folded->nodes, c.folded_nodes);
    EXPECT_GT(plain->nodes, folded->nodes);
    int compared = 0;
    for (const auto& [name, want] : plain->outputs) {
      const Tensor& got = folded->outputs.at(name);
      ASSERT_EQ(got.num_elements(), want.num_elements());
      double scale = 1;
      for (int64_t i = 0; i < want.num_elements(); ++i)
        scale = std::max(scale, std::abs(want.GetDouble(i)));
      for (int64_t i = 0; i < want.num_elements(); ++i, ++compared) {
        ASSERT_FALSE(std::isnan(got.GetDouble(i))) << name << "[" << i << "] unwritten";
        EXPECT_LE(std::abs(got.GetDouble(i) - want.GetDouble(i)), c.rel * scale)
            << name << "[" << i << "]";
      }
    }
    EXPECT_GT(compared, 100);
  }
}

// batch-casts: the MultiCast gives each Cast's values, bit for bit.
TEST(BatchCastsTest, OneMultiCastGivesTheCastsValues) {
  std::string text = R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[5,7] a, float[3] b, float16[4] c) => (float16[5,7] ah, float16[3] bh, bfloat16[4] cb, float[5,5] y)
{
  ah = Cast <to = 10> (a)
  bh = Cast <to = 10> (b)
  cb = Cast <to = 16> (c)
  y = MatMul (a, a2)
  a2 = Transpose <perm = [1, 0]> (a)
})";
  // (cb: a single Cast to bfloat16 stays a Cast.)
  auto batched = RunWith(text, {}, 9);
  ASSERT_TRUE(batched.ok()) << batched.status().message();
  auto plain = RunWith(text, {"batch-casts"}, 9);
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_EQ(plain->nodes, batched->nodes + 1);
  for (const char* name : {"ah", "bh", "cb"}) {
    const Tensor& got = batched->outputs.at(name);
    const Tensor& want = plain->outputs.at(name);
    ASSERT_EQ(got.nbytes(), want.nbytes());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), want.nbytes()), 0) << name;
  }
}

// fuse-norm-grad: the gradients of a LayerNormalization over the last one
// and the last two axes (and with a residual connection around it), fused
// into ai.amp LayerNormGrad and unfused, bit for bit (the kernel rounds
// where the unfused FP32 ops do), on random data.
TEST(FuseNormGradTest, LayerNormGradientsAreTheUnfusedOnesBitForBit) {
  for (const char* axis : {"-1", "1", "-1 residual"}) {
    SCOPED_TRACE(axis);
    bool residual = std::string(axis).find("residual") != std::string::npos;
    std::string text = std::string(R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[3,5,24] x) => (float[3,5,24] y)
{
  h = Mul (x, w)
  n = LayerNormalization <axis = )") +
                       std::string(axis).substr(0, 2) +
                       R"(, epsilon = 0.001> (h, gamma, beta)
  y = )" + (residual ? "Add (n, h)" : "Identity (n)") +
                       R"(
})";
    std::string shape = std::string(axis) != "1" ? "[24]" : "[5,24]";
    int64_t n = std::string(axis) != "1" ? 24 : 120;
    // (x goes through a parameter w, so the LayerNorm's input gradient is
    // needed and the whole backward is built.)
    std::string init = "<float[24] w = {";
    for (int64_t i = 0; i < 24; ++i) init += (i ? ", " : "") + std::to_string(0.9 + 0.01 * i);
    init += "}, float" + shape + " gamma = {";
    for (int64_t i = 0; i < n; ++i) init += (i ? ", " : "") + std::to_string(0.5 + 0.01 * i);
    init += "}, float" + shape + " beta = {";
    for (int64_t i = 0; i < n; ++i) init += (i ? ", " : "") + std::to_string(0.02 * i - 0.3);
    init += "}>\n";
    text.insert(text.find("{\n"), init);
    std::map<std::string, Tensor> grads[2];
    size_t nodes[2] = {0, 0};
    for (int fuse = 0; fuse < 2; ++fuse) {
      auto m = LoadModelText(text);
      ASSERT_TRUE(m.ok()) << m.status().message();
      pipelines::TrainingOptions t;
      t.loss.kind = "mse";
      t.loss.label_type = DType::kFloat32;
      t.gradients_only = true;
      ASSERT_TRUE(pipelines::Training(t).Run(*m).ok());
      ExecutorOptions o;
      o.poison = true;
      if (!fuse) o.disabled_passes = {"fuse-norm-grad"};
      auto s = Executor::Create(std::move(*m), o);
      ASSERT_TRUE(s.ok()) << s.status().message();
      std::mt19937 rng(11);
      for (const Value* in : (*s)->model().graph->inputs())
        ASSERT_TRUE(
            (*s)->SetInput(in->name(), Random(in->dtype(), *StaticDims(*in->type().shape), rng))
                .ok());
      Status st = (*s)->Run();
      ASSERT_TRUE(st.ok()) << st.message();
      nodes[fuse] = (*s)->memory().nodes;
      for (const Value* out : (*s)->model().graph->outputs()) {
        auto v = (*s)->Fetch(out->name());
        ASSERT_TRUE(v.ok()) << out->name();
        grads[fuse][out->name()] = *v;
      }
    }
    EXPECT_LT(nodes[1], nodes[0]);
    ASSERT_GE(grads[0].size(), 4u);  // loss, d w, d gamma, d beta
    for (const auto& [name, want] : grads[0]) {
      const Tensor& got = grads[1].at(name);
      ASSERT_EQ(got.nbytes(), want.nbytes());
      EXPECT_EQ(std::memcmp(got.data(), want.data(), want.nbytes()), 0) << name;
    }
  }
}

// The same for training-mode BatchNormalization (NCHW, normalized over all
// but the channel axis): the gradients of the input, scale and bias, fused
// and unfused, bit for bit.
TEST(FuseNormGradTest, BatchNormGradientsAreTheUnfusedOnesBitForBit) {
  std::string text = R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3,4,5] x) => (float[2,3,4,5] y)
<float[3] w = {0.9, 1.1, 1.3}, float[3] scale = {1.0, 0.5, 2.0}, float[3] bias = {0.0, 0.1, -0.2},
 float[3] mean = {0.0, 0.0, 0.0}, float[3] var = {1.0, 1.0, 1.0}, float[3,1,1] wb = {0.9, 1.1, 1.3}>
{
  h = Mul (x, wb)
  y, rm, rv = BatchNormalization <epsilon = 0.001, momentum = 0.9, training_mode = 1> (h, scale, bias, mean, var)
})";
  std::map<std::string, Tensor> grads[2];
  size_t nodes[2] = {0, 0};
  for (int fuse = 0; fuse < 2; ++fuse) {
    auto m = LoadModelText(text);
    ASSERT_TRUE(m.ok()) << m.status().message();
    pipelines::TrainingOptions t;
    t.loss.kind = "mse";
    t.loss.output = "y";
    t.loss.label_type = DType::kFloat32;
    t.gradients_only = true;
    Status built = pipelines::Training(t).Run(*m).status();
    ASSERT_TRUE(built.ok()) << built.message();
    ExecutorOptions o;
    o.poison = true;
    if (!fuse) o.disabled_passes = {"fuse-norm-grad"};
    auto s = Executor::Create(std::move(*m), o);
    ASSERT_TRUE(s.ok()) << s.status().message();
    std::mt19937 rng(12);
    for (const Value* in : (*s)->model().graph->inputs())
      ASSERT_TRUE(
          (*s)->SetInput(in->name(), Random(in->dtype(), *StaticDims(*in->type().shape), rng))
              .ok());
    Status st = (*s)->Run();
    ASSERT_TRUE(st.ok()) << st.message();
    nodes[fuse] = (*s)->memory().nodes;
    for (const Value* out : (*s)->model().graph->outputs()) {
      auto v = (*s)->Fetch(out->name());
      ASSERT_TRUE(v.ok()) << out->name();
      grads[fuse][out->name()] = *v;
    }
  }
  EXPECT_LT(nodes[1], nodes[0]) << "the BatchNorm backward was not fused";
  ASSERT_GE(grads[0].size(), 4u);
  for (const auto& [name, want] : grads[0]) {
    const Tensor& got = grads[1].at(name);
    ASSERT_EQ(got.nbytes(), want.nbytes());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), want.nbytes()), 0) << name;
  }
}

}  // namespace
}  // namespace amp

namespace amp {
namespace {

// Random N(0, sd) values written into the "{KEY}" placeholders of ONNX
// text (an initializer's elements).
void FillWeights(std::string& text, const std::vector<std::pair<std::string, int>>& sizes,
                 uint32_t seed, double sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, sd);
  for (const auto& [key, count] : sizes) {
    std::string values;
    for (int i = 0; i < count; ++i) values += (i ? ", " : "") + std::to_string(normal(rng));
    text.replace(text.find("{" + key + "}"), key.size() + 2, "{" + values + "}");
  }
}

// The training step of ONNX text (pipelines::Training, then the precision
// level's passes) in an Executor that poisons every output and profiles.
StatusOr<std::unique_ptr<Executor>> TrainingStep(const std::string& text,
                                                 const pipelines::TrainingOptions& t,
                                                 OptLevel level, DType half, ExecutorOptions o) {
  AMP_ASSIGN_OR_RETURN(Model m, LoadModelText(text));
  PassPipeline p = pipelines::Training(t);
  PrecisionPolicy policy;
  policy.level = level;
  policy.half_type = half;
  p.Append(pipelines::ForLevel(policy));
  AMP_RETURN_IF_ERROR(p.Run(m).status());
  o.poison = true;
  o.profile = true;
  return Executor::Create(std::move(m), o);
}

Tensor FloatScalar(double v) {
  Tensor t(DType::kFloat32, {});
  t.SetDouble(0, v);
  return t;
}

// Kernel calls per op of what `ex` ran ("ai.amp:Op" outside the default domain).
std::map<std::string, size_t> CallsByOp(const Executor& ex) {
  std::map<std::string, size_t> calls;
  for (const ProfileEntry& e : ex.ProfileByOp()) calls[e.key] = e.calls;
  return calls;
}

StatusOr<std::map<std::string, Tensor>> FetchAll(Executor& ex,
                                                 const std::vector<std::string>& names) {
  std::map<std::string, Tensor> out;
  for (const std::string& name : names) {
    AMP_ASSIGN_OR_RETURN(Tensor t, ex.Fetch(name));
    out[name] = t;
  }
  return out;
}

// Every tensor of `got` is the one of `want`, bit for bit (and there are some).
void ExpectSameBits(const std::map<std::string, Tensor>& want,
                    const std::map<std::string, Tensor>& got) {
  ASSERT_FALSE(want.empty());
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [name, w] : want) {
    const Tensor& g = got.at(name);
    ASSERT_EQ(g.nbytes(), w.nbytes()) << name;
    EXPECT_EQ(std::memcmp(g.data(), w.data(), w.nbytes()), 0) << name;
  }
}

// fuse-gemm-epilogue: an MLP's Linears (Gemm with a bias, then ReLU) and a
// Linear of a sequence (a 3-D MatMul and the bias Add, whose bias gradient
// sums over two axes), their gradients and outputs with the biases, ReLUs,
// ReLU's gradient and bias gradients in the GEMMs and without, bit for bit
// on random data, FP32 (O0) and O1 in fp16 and bf16. The whole step runs
// (SGD, loss scaling in O1: the weight gradients are then GEMMs into FP32,
// as amp-compile builds them); the updated weights and the loss compared.
TEST(FuseGemmEpilogueTest, LinearsAndTheirGradientsAreTheUnfusedOnesBitForBit) {
  struct Case {
    const char* name;
    OptLevel level;
    DType half;
    size_t fused_sums;
  };
  // (In O1 the loss's gradient is FP32 and the last GEMM reads its half
  // copy: that bias gradient stays a ReduceSum.)
  for (Case c : {Case{"fp32", OptLevel::kO0, DType::kFloat16, 3},
                 Case{"fp16", OptLevel::kO1, DType::kFloat16, 2},
                 Case{"bf16", OptLevel::kO1, DType::kBFloat16, 2}}) {
    SCOPED_TRACE(c.name);
    std::string text = R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3,8] s) => (float[6,5] y)
<float[8,4] w3 = {W3}, float[4] b3 = {B3}, float[7,4] w1 = {W1}, float[7] b1 = {B1},
 float[5,7] w2 = {W2}, float[5] b2 = {B2}>
{
  t = MatMul (s, w3)
  z = Add (t, b3)
  rows = Constant <value = int64[2] {6, 4}> ()
  x = Reshape (z, rows)
  h = Gemm <transB = 1> (x, w1, b1)
  r = Relu (h)
  y = Gemm <transB = 1> (r, w2, b2)
})";
    FillWeights(text, {{"W1", 28}, {"B1", 7}, {"W2", 35}, {"B2", 5}, {"W3", 32}, {"B3", 4}}, 17,
                0.4);
    pipelines::TrainingOptions t;
    t.loss.kind = "mse";
    t.loss.label_type = DType::kFloat32;
    t.optimizer.lr = 0.25f;
    if (c.level != OptLevel::kO0) t.loss_scale = LossScaleOptions{};
    std::map<std::string, Tensor> values[2];
    std::map<std::string, size_t> calls[2];
    for (int fuse = 0; fuse < 2; ++fuse) {
      ExecutorOptions o;
      if (!fuse) o.disabled_passes = {"fuse-gemm-epilogue"};
      auto ex = TrainingStep(text, t, c.level, c.half, o);
      ASSERT_TRUE(ex.ok()) << ex.status().message();
      std::mt19937 inputs(19);
      ASSERT_TRUE((*ex)->SetInput("s", Random(DType::kFloat32, {2, 3, 8}, inputs)).ok());
      ASSERT_TRUE((*ex)->SetInput("labels", Random(DType::kFloat32, {6, 5}, inputs)).ok());
      ASSERT_TRUE((*ex)->SetInput("lr", FloatScalar(0.25)).ok());
      Status st = (*ex)->Run();
      ASSERT_TRUE(st.ok()) << st.message();
      calls[fuse] = CallsByOp(**ex);
      auto v = FetchAll(**ex, {"w1", "b1", "w2", "b2", "w3", "b3", "loss"});
      ASSERT_TRUE(v.ok()) << v.status().message();
      values[fuse] = *v;
    }
    // The bias gradients become the weight gradients' second outputs; the
    // ReLU and its gradient (a Greater and a Where, then one fused kernel)
    // become part of the GEMMs.
    EXPECT_EQ(calls[0]["Relu"], 1u);
    EXPECT_EQ(calls[1]["Relu"], 0u);
    EXPECT_EQ(calls[0]["ReduceSum"], calls[1]["ReduceSum"] + c.fused_sums)
        << "bias gradients not fused";
    EXPECT_EQ(calls[0]["ai.amp:FusedElementwise"], calls[1]["ai.amp:FusedElementwise"] + 1)
        << "ReLU's gradient not fused";
    ExpectSameBits(values[0], values[1]);
  }
}

// fuse-conv-weight-grad: a small CNN's step (a strided, padded Conv whose
// weight gradient needs the Slice, then a dilated one) with the weight
// gradients fused into ai.amp ConvWeightGrad and unfused, bit for bit on
// random data, FP32 (O0) and O1 (half Convs, the gradient's FP32 Cast).
TEST(FuseConvWeightGradTest, WeightGradientsAreTheUnfusedOnesBitForBit) {
  for (OptLevel level : {OptLevel::kO0, OptLevel::kO1}) {
    SCOPED_TRACE(level == OptLevel::kO0 ? "fp32" : "fp16");
    std::string text = R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3,10,10] x) => (float[2,4,2,2] y)
<float[4,3,3,3] w1 = {W1}, float[4,4,2,2] w2 = {W2}>
{
  h = Conv <pads = [1, 1, 1, 1], strides = [2, 2]> (x, w1)
  r = Relu (h)
  y = Conv <dilations = [2, 2], strides = [2, 2]> (r, w2)
})";
    FillWeights(text, {{"W1", 108}, {"W2", 64}}, 31, 0.5);
    pipelines::TrainingOptions t;
    t.loss.kind = "mse";
    t.loss.label_type = DType::kFloat32;
    t.optimizer.lr = 0.25f;
    if (level != OptLevel::kO0) t.loss_scale = LossScaleOptions{};
    std::map<std::string, Tensor> got[2];
    size_t fused_calls = 0;
    for (int fuse = 0; fuse < 2; ++fuse) {
      ExecutorOptions o;
      if (!fuse) o.disabled_passes = {"fuse-conv-weight-grad"};
      auto ex = TrainingStep(text, t, level, DType::kFloat16, o);
      ASSERT_TRUE(ex.ok()) << ex.status().message();
      std::mt19937 inputs(37);
      ASSERT_TRUE((*ex)->SetInput("x", Random(DType::kFloat32, {2, 3, 10, 10}, inputs)).ok());
      ASSERT_TRUE((*ex)->SetInput("labels", Random(DType::kFloat32, {2, 4, 2, 2}, inputs)).ok());
      ASSERT_TRUE((*ex)->SetInput("lr", FloatScalar(0.25)).ok());
      Status st = (*ex)->Run();
      ASSERT_TRUE(st.ok()) << st.message();
      if (fuse) fused_calls = CallsByOp(**ex)["ai.amp:ConvWeightGrad"];
      auto v = FetchAll(**ex, {"w1", "w2", "loss"});
      ASSERT_TRUE(v.ok()) << v.status().message();
      got[fuse] = *v;
    }
    EXPECT_EQ(fused_calls, 2u) << "fuse-conv-weight-grad did not fuse both";
    ExpectSameBits(got[0], got[1]);
  }
}

// A Linear's bias behind a LayerNormalization, as nn.MultiheadAttention's
// out-projection and a Transformer layer's second Linear are: the bias
// gradient is a sum of the LayerNorm's input gradient over its rows, read
// through a batch-first Transpose and a Reshape (s -> h -> Transpose -> LN,
// residual Add, then a Reshape to rows for the next Linear).
constexpr const char* kBiasBehindNorm = R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[3,4,8] s) => (float[12,5] y)
<float[8,6] w = {W}, float[6] b = {B}, float[6] gamma = {G}, float[6] beta = {E},
 float[5,6] w2 = {W2}, float[5] b2 = {B2}>
{
  m = MatMul (s, w)
  u = Add (m, b)
  t = Transpose <perm = [1, 0, 2]> (u)
  n = LayerNormalization <axis = -1, epsilon = 0.001> (t, gamma, beta)
  rows = Constant <value = int64[2] {12, 6}> ()
  r = Reshape (n, rows)
  y = Gemm <transB = 1> (r, w2, b2)
})";

struct NormStep {
  // The updated weights, the loss and b's gradient (u_grad_3, scaled in O1).
  std::map<std::string, Tensor> values;
  std::map<std::string, size_t> calls;
};

StatusOr<NormStep> RunNormStep(OptLevel level, DType half, std::set<std::string, std::less<>> off) {
  std::string text = kBiasBehindNorm;
  FillWeights(text, {{"W", 48}, {"B", 6}, {"G", 6}, {"E", 6}, {"W2", 30}, {"B2", 5}}, 41, 0.5);
  pipelines::TrainingOptions t;
  t.loss.kind = "mse";
  t.loss.label_type = DType::kFloat32;
  t.optimizer.lr = 0.25f;
  if (level != OptLevel::kO0) t.loss_scale = LossScaleOptions{};
  ExecutorOptions o;
  o.disabled_passes = std::move(off);
  o.extra_outputs = {"u_grad_3"};
  AMP_ASSIGN_OR_RETURN(auto ex, TrainingStep(text, t, level, half, o));
  std::mt19937 inputs(43);
  AMP_RETURN_IF_ERROR(ex->SetInput("s", Random(DType::kFloat32, {3, 4, 8}, inputs)));
  AMP_RETURN_IF_ERROR(ex->SetInput("labels", Random(DType::kFloat32, {12, 5}, inputs)));
  AMP_RETURN_IF_ERROR(ex->SetInput("lr", FloatScalar(0.25)));
  AMP_RETURN_IF_ERROR(ex->Run());
  NormStep out;
  out.calls = CallsByOp(*ex);
  AMP_ASSIGN_OR_RETURN(out.values,
                       FetchAll(*ex, {"w", "b", "gamma", "beta", "w2", "b2", "loss", "u_grad_3"}));
  return out;
}

// fuse-norm-grad: that bias gradient as LayerNormGrad's fourth output (dx's
// column sums) and as the ReduceSum it replaces, on random data, FP32 (O0)
// and O1 in fp16 and bf16. Both sum each column's FP32 values in double and
// round once; the kernel sums dx's rows in their order, the ReduceSum in the
// order of the transposed rows, so b's gradient may differ where the double
// sums round to different floats (at most an FP32 ulp of the sum); all else
// is bit for bit.
TEST(FuseNormGradTest, BiasGradientsBehindTheNormAreTheRowSumsOfItsGradient) {
  for (auto [level, half, name] : {std::tuple{OptLevel::kO0, DType::kFloat16, "fp32"},
                                   std::tuple{OptLevel::kO1, DType::kFloat16, "fp16"},
                                   std::tuple{OptLevel::kO1, DType::kBFloat16, "bf16"}}) {
    SCOPED_TRACE(name);
    // (fuse-gemm-epilogue would take the FP32 step's sum into the weight
    // gradient's GEMM: off in both.)
    auto fused = RunNormStep(level, half, {"fold-output-casts", "fuse-gemm-epilogue"});
    ASSERT_TRUE(fused.ok()) << fused.status().message();
    auto plain =
        RunNormStep(level, half, {"fold-output-casts", "fuse-gemm-epilogue", "fuse-norm-grad"});
    ASSERT_TRUE(plain.ok()) << plain.status().message();
    EXPECT_EQ(fused->calls["ai.amp:LayerNormGrad"], 1u);
    EXPECT_EQ(fused->calls["ReduceSum"] + 1 + 2, plain->calls["ReduceSum"])
        << "the bias gradient (and the scale's and bias's of the LayerNorm) not fused";
    const Tensor& want = plain->values.at("u_grad_3");
    const Tensor& got = fused->values.at("u_grad_3");
    ASSERT_EQ(got.num_elements(), 6);
    for (int64_t i = 0; i < 6; ++i) {
      float w = static_cast<float>(want.GetDouble(i));
      EXPECT_NE(w, 0.f);
      EXPECT_LE(std::abs(got.GetDouble(i) - w), std::abs(std::nextafter(w, 2 * w) - w))
          << "u_grad_3[" << i << "]";
    }
    plain->values.erase("u_grad_3");
    plain->values.erase("b");
    fused->values.erase("u_grad_3");
    fused->values.erase("b");
    ExpectSameBits(plain->values, fused->values);
  }
}

// fold-output-casts: the half copies of the LayerNorm's output (behind a
// Reshape) and of its input gradient (behind the batch-first Transpose and
// the weight gradient's Reshape) written by the LayerNorm kernels, and by
// Casts, bit for bit in fp16 and bf16; the FP32 step has no such Casts.
TEST(FoldOutputCastsTest, HalfNormOutputsAreTheCastOnesBitForBit) {
  for (auto [half, name] : {std::pair{DType::kFloat16, "fp16"}, {DType::kBFloat16, "bf16"}}) {
    SCOPED_TRACE(name);
    auto fused = RunNormStep(OptLevel::kO1, half, {});
    ASSERT_TRUE(fused.ok()) << fused.status().message();
    auto plain = RunNormStep(OptLevel::kO1, half, {"fold-output-casts"});
    ASSERT_TRUE(plain.ok()) << plain.status().message();
    EXPECT_EQ(fused->calls["ai.amp:LayerNormalization"], 1u);
    EXPECT_EQ(fused->calls["LayerNormalization"], 0u);
    EXPECT_EQ(fused->calls["Cast"] + 2, plain->calls["Cast"]) << "the two Casts not folded";
    ExpectSameBits(plain->values, fused->values);
  }
  auto fp32 = RunNormStep(OptLevel::kO0, DType::kFloat16, {});
  ASSERT_TRUE(fp32.ok()) << fp32.status().message();
  EXPECT_EQ(fp32->calls["ai.amp:LayerNormalization"], 0u);
}

// fuse-max-pool-grad: a small CNN's step (Conv, ReLU, an overlapping 3x3
// stride-2 padded max pool as ResNet's stem has - the ReLU's zeros make
// ties, and windows share inputs - then a Conv) with MaxPool's gradient
// fused into ai.amp MaxPoolGrad and unfused, bit for bit on random data,
// FP32 (O0) and O1 (a half pool and gradient).
TEST(FuseMaxPoolGradTest, TheInputGradientIsTheUnfusedOneBitForBit) {
  for (OptLevel level : {OptLevel::kO0, OptLevel::kO1}) {
    SCOPED_TRACE(level == OptLevel::kO0 ? "fp32" : "fp16");
    std::string text = R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3,9,9] x) => (float[2,4,3,3] y)
<float[4,3,3,3] w1 = {W1}, float[4,4,3,3] w2 = {W2}>
{
  h = Conv <pads = [1, 1, 1, 1]> (x, w1)
  r = Relu (h)
  p = MaxPool <kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]> (r)
  y = Conv <pads = [1, 1, 1, 1], strides = [2, 2]> (p, w2)
})";
    FillWeights(text, {{"W1", 108}, {"W2", 144}}, 41, 0.5);
    pipelines::TrainingOptions t;
    t.loss.kind = "mse";
    t.loss.label_type = DType::kFloat32;
    t.optimizer.lr = 0.25f;
    if (level != OptLevel::kO0) t.loss_scale = LossScaleOptions{};
    std::map<std::string, Tensor> got[2];
    std::map<std::string, size_t> calls[2];
    for (int fuse = 0; fuse < 2; ++fuse) {
      ExecutorOptions o;
      if (!fuse) o.disabled_passes = {"fuse-max-pool-grad"};
      auto ex = TrainingStep(text, t, level, DType::kFloat16, o);
      ASSERT_TRUE(ex.ok()) << ex.status().message();
      std::mt19937 inputs(43);
      ASSERT_TRUE((*ex)->SetInput("x", Random(DType::kFloat32, {2, 3, 9, 9}, inputs)).ok());
      ASSERT_TRUE((*ex)->SetInput("labels", Random(DType::kFloat32, {2, 4, 3, 3}, inputs)).ok());
      ASSERT_TRUE((*ex)->SetInput("lr", FloatScalar(0.25)).ok());
      Status st = (*ex)->Run();
      ASSERT_TRUE(st.ok()) << st.message();
      calls[fuse] = CallsByOp(**ex);
      auto v = FetchAll(**ex, {"w1", "w2", "loss"});
      ASSERT_TRUE(v.ok()) << v.status().message();
      got[fuse] = *v;
    }
    EXPECT_EQ(calls[0]["ScatterElements"], 1u) << "the unfused step has no scatter";
    EXPECT_EQ(calls[1]["ScatterElements"], 0u);
    EXPECT_EQ(calls[1]["ai.amp:MaxPoolGrad"], 1u) << "fuse-max-pool-grad did not fuse";
    ExpectSameBits(got[0], got[1]);
  }
}

// ai.amp MaxPoolGrad against its definition in double: each dy element goes
// to the first maximum of its window (windows overlapping, padded, with
// ties from repeated values), exactly (every dx is a sum of at most four
// dy values of few bits).
TEST(FusedKernelsTest, MaxPoolGradSendsEachGradientToItsWindowsMaximum) {
  const int64_t h = 7, w = 6, k = 3, s = 2, p = 1;
  const int64_t ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1;
  std::string text =
      "<ir_version: 8, opset_import: [\"\" : 17, \"ai.amp\" : 1]>\n"
      "g (float[2,3,7,6] x, float[2,3," +
      std::to_string(ho) + "," + std::to_string(wo) +
      "] dy) => (float[2,3,7,6] dx)\n"
      "{ dx = ai.amp.MaxPoolGrad <kernel_shape = [3, 3], strides = [2, 2], "
      "pads = [1, 1, 1, 1]> (dy, x) }";
  auto m = LoadModelText(text);
  ASSERT_TRUE(m.ok()) << m.status().message();
  ExecutorOptions opts;
  opts.poison = true;
  auto ex = Executor::Create(std::move(*m), opts);
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  std::mt19937 rng(53);
  // Values from a small set, so that windows hold ties; dy in quarters.
  Tensor x(DType::kFloat32, {2, 3, h, w}), dy(DType::kFloat32, {2, 3, ho, wo});
  std::uniform_int_distribution<int> pick(-3, 3);
  for (int64_t i = 0; i < x.num_elements(); ++i) x.SetDouble(i, pick(rng));
  for (int64_t i = 0; i < dy.num_elements(); ++i) dy.SetDouble(i, (pick(rng) + 0.5) / 4);
  ASSERT_TRUE((*ex)->SetInput("x", x).ok());
  ASSERT_TRUE((*ex)->SetInput("dy", dy).ok());
  Status st = (*ex)->Run();
  ASSERT_TRUE(st.ok()) << st.message();
  auto got = (*ex)->Fetch("dx");
  ASSERT_TRUE(got.ok()) << got.status().message();
  std::vector<double> want(x.num_elements(), 0.0);
  for (int64_t plane = 0; plane < 6; ++plane)
    for (int64_t oy = 0; oy < ho; ++oy)
      for (int64_t ox = 0; ox < wo; ++ox) {
        int64_t arg = -1;
        double best = 0;
        for (int64_t i = 0; i < k; ++i)
          for (int64_t j = 0; j < k; ++j) {
            int64_t yy = oy * s - p + i, xx = ox * s - p + j;
            if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
            double v = x.GetDouble((plane * h + yy) * w + xx);
            if (arg < 0 || v > best) {
              best = v;
              arg = (plane * h + yy) * w + xx;
            }
          }
        want[arg] += dy.GetDouble((plane * ho + oy) * wo + ox);
      }
  for (int64_t i = 0; i < x.num_elements(); ++i)
    EXPECT_EQ(got->GetDouble(i), want[i]) << "dx[" << i << "]";
}

// fuse-cross-entropy: a classifier's step with the loss and its gradient
// fused into ai.amp SoftmaxCrossEntropy and unfused, bit for bit on random
// data: the attached mean loss in FP32 and in O1 (fp16 logits read before
// their FP32 Cast, the half gradient copy the fused node writes, the mean's
// division inside), and a loss inside the model with ignore_index, whose
// per-row scale zeroes the ignored rows.
TEST(FuseCrossEntropyTest, TheLossGradientIsTheUnfusedOneBitForBit) {
  struct Case {
    const char* name;
    OptLevel level;
    bool in_model;
  };
  for (Case c : {Case{"fp32", OptLevel::kO0, false}, Case{"fp16", OptLevel::kO1, false},
                 Case{"ignore_index fp32", OptLevel::kO0, true},
                 Case{"ignore_index fp16", OptLevel::kO1, true}}) {
    SCOPED_TRACE(c.name);
    std::string text = c.in_model ? R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[6,8] x, int64[6] labels) => (float loss)
<float[8,5] w = {W}>
{
  logits = MatMul (x, w)
  loss = SoftmaxCrossEntropyLoss <ignore_index = -100> (logits, labels)
})"
                                  : R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[6,8] x) => (float[6,5] logits)
<float[8,5] w = {W}>
{
  logits = MatMul (x, w)
})";
    FillWeights(text, {{"W", 40}}, 23, 0.5);
    pipelines::TrainingOptions t;
    t.loss.kind = c.in_model ? "model" : "cross_entropy";
    t.optimizer.lr = 0.5f;
    if (c.level != OptLevel::kO0) t.loss_scale = LossScaleOptions{};
    std::map<std::string, Tensor> got[2];
    std::map<std::string, size_t> calls[2];
    for (int fuse = 0; fuse < 2; ++fuse) {
      ExecutorOptions o;
      if (!fuse) o.disabled_passes = {"fuse-cross-entropy"};
      auto ex = TrainingStep(text, t, c.level, DType::kFloat16, o);
      ASSERT_TRUE(ex.ok()) << ex.status().message();
      std::mt19937 inputs(29);
      Tensor labels(DType::kInt64, {6});
      for (int64_t i = 0; i < 6; ++i)
        labels.SetDouble(i, i == 2 && c.in_model ? -100 : (i * 3) % 5);
      ASSERT_TRUE((*ex)->SetInput("x", Random(DType::kFloat32, {6, 8}, inputs)).ok());
      ASSERT_TRUE((*ex)->SetInput("labels", labels).ok());
      ASSERT_TRUE((*ex)->SetInput("lr", FloatScalar(0.5)).ok());
      Status st = (*ex)->Run();
      ASSERT_TRUE(st.ok()) << st.message();
      calls[fuse] = CallsByOp(**ex);
      auto v = FetchAll(**ex, {"w", "loss"});
      ASSERT_TRUE(v.ok()) << v.status().message();
      got[fuse] = *v;
    }
    // The loss and its gradient in one node; in O1 it reads the half logits.
    EXPECT_EQ(calls[1]["ai.amp:SoftmaxCrossEntropy"], 1u) << "fuse-cross-entropy did not fuse";
    EXPECT_EQ(calls[1]["ai.amp:SoftmaxCrossEntropyGrad"], 0u);
    EXPECT_EQ(calls[1]["SoftmaxCrossEntropyLoss"], 0u);
    EXPECT_EQ(calls[0]["SoftmaxCrossEntropyLoss"], 1u);
    EXPECT_EQ(calls[0]["Softmax"], 1u);
    EXPECT_EQ(calls[1]["Softmax"], 0u);
    // (The half logits are the model's output there; inside, the GEMM
    // writes them in FP32.)
    if (c.level == OptLevel::kO1 && !c.in_model) {
      EXPECT_LT(calls[1]["Cast"], calls[0]["Cast"]) << "the Cast stayed";
    }
    ExpectSameBits(got[0], got[1]);
  }
}

// fold-attention-views: TorchScript's nn.MultiheadAttention (the packed
// in-projection [S, B, 3E] unflattened, moved and split into q, k, v; the
// output's heads merged back for the out-projection; batch_first's
// transposes around it) trained one SGD step with the layout ops folded
// into the attention nodes' views and without: the updated weights and the
// loss bit for bit, FP32 and O1 (fp16, bf16). Folded, the forward reads q,
// k and v in the projection's output and writes the heads merged, and the
// backward writes the packed gradient (one output): no Gather, Concat or
// head Transpose runs.
TEST(FoldAttentionViewsTest, PackedMultiheadAttentionIsTheUnfoldedOneBitForBit) {
  // S 5, B 2, E 12, 3 heads of 4.
  std::string text = R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,5,12] h) => (float[2,5,12] y)
<float[36,12] w = {W}, float[36] b = {B}, float[12,12] wo = {WO}, float[12] bo = {BO},
 int64[4] s1 = {5, 2, 3, 12}, int64[1] z = {0}, int64[1] three = {3},
 int64[3] s2 = {5, 6, 4}, int64[4] s3 = {2, 3, 5, 4}, int64[2] s4 = {10, 12},
 int64[3] s5 = {5, 2, 12}>
{
  i0 = Constant <value = int64 {0}> ()
  i1 = Constant <value = int64 {1}> ()
  i2 = Constant <value = int64 {2}> ()
  c = Constant <value = float {0.7071}> ()
  ht = Transpose <perm = [1, 0, 2]> (h)
  wt = Transpose <perm = [1, 0]> (w)
  mm = MatMul (ht, wt)
  x = Add (b, mm)
  r = Reshape (x, s1)
  u = Unsqueeze (r, z)
  t = Transpose <perm = [3, 1, 2, 0, 4]> (u)
  sq = Squeeze (t, three)
  g0 = Gather <axis = 0> (sq, i0)
  g1 = Gather <axis = 0> (sq, i1)
  g2 = Gather <axis = 0> (sq, i2)
  a0 = Reshape (g0, s2)
  a1 = Reshape (g1, s2)
  a2 = Reshape (g2, s2)
  b0 = Transpose <perm = [1, 0, 2]> (a0)
  b1 = Transpose <perm = [1, 0, 2]> (a1)
  b2 = Transpose <perm = [1, 0, 2]> (a2)
  q = Reshape (b0, s3)
  k = Reshape (b1, s3)
  v = Reshape (b2, s3)
  qs = Mul (q, c)
  ks = Mul (k, c)
  kt = Transpose <perm = [0, 1, 3, 2]> (ks)
  sc = MatMul (qs, kt)
  p = Softmax <axis = -1> (sc)
  o = MatMul (p, v)
  ot = Transpose <perm = [2, 0, 1, 3]> (o)
  of = Reshape (ot, s4)
  y0 = Gemm <transB = 1> (of, wo, bo)
  y1 = Reshape (y0, s5)
  y = Transpose <perm = [1, 0, 2]> (y1)
})";
  FillWeights(text, {{"W", 432}, {"B", 36}, {"WO", 144}, {"BO", 12}}, 31, 0.4);
  struct Case {
    const char* name;
    OptLevel level;
    DType half;
  };
  for (Case c :
       {Case{"fp32", OptLevel::kO0, DType::kFloat16}, Case{"fp16", OptLevel::kO1, DType::kFloat16},
        Case{"bf16", OptLevel::kO1, DType::kBFloat16}}) {
    SCOPED_TRACE(c.name);
    pipelines::TrainingOptions t;
    t.loss.kind = "mse";
    t.loss.output = "y";
    t.loss.label_type = DType::kFloat32;
    t.optimizer.lr = 0.5f;
    std::map<std::string, Tensor> got[2];
    std::map<std::string, size_t> calls[2];
    for (int fold = 0; fold < 2; ++fold) {
      ExecutorOptions o;
      if (!fold) o.disabled_passes = {"fold-attention-views"};
      auto ex = TrainingStep(text, t, c.level, c.half, o);
      ASSERT_TRUE(ex.ok()) << ex.status().message();
      std::mt19937 inputs(37);
      for (const Value* in : (*ex)->model().graph->inputs()) {
        if (in->name() == "lr") continue;
        Tensor x = Random(in->dtype(), *StaticDims(*in->type().shape), inputs);
        ASSERT_TRUE((*ex)->SetInput(in->name(), x).ok()) << in->name();
      }
      ASSERT_TRUE((*ex)->SetInput("lr", FloatScalar(0.5)).ok());
      Status st = (*ex)->Run();
      ASSERT_TRUE(st.ok()) << st.message();
      calls[fold] = CallsByOp(**ex);
      auto v = FetchAll(**ex, {"w", "b", "wo", "bo", "loss"});
      ASSERT_TRUE(v.ok()) << v.status().message();
      got[fold] = *v;
    }
    EXPECT_EQ(calls[0]["ai.amp:AttentionGrad"], 1u);
    EXPECT_EQ(calls[1]["ai.amp:AttentionGrad"], 1u);
    EXPECT_GE(calls[0]["Gather"], 3u);
    EXPECT_EQ(calls[1]["Gather"], 0u);
    EXPECT_EQ(calls[1]["Concat"], 0u);
    // Only batch_first's three (h, y and y's gradient) are left: the
    // gradients of q, k and v went into the packed gradient.
    EXPECT_EQ(calls[1]["Transpose"], 3u) << "the head transposes stayed";
    EXPECT_GE(calls[0]["Transpose"], 11u);
    ExpectSameBits(got[0], got[1]);
  }
}

// fuse-optimizer for SGD: PyTorch's SGD (plain; momentum; momentum with
// dampening, whose first buffer is the gradient; Nesterov with weight
// decay) as one ai.amp FusedSgd and as the optimizer pass's standard ops,
// every piece of state after four O1 steps (one of them overflowing, so
// skipped) bit for bit.
TEST(FuseOptimizerTest, SgdIsTheUnfusedSgdBitForBit) {
  struct Case {
    const char* name;
    float momentum, dampening, weight_decay;
    bool nesterov;
  };
  for (Case c : {Case{"plain", 0, 0, 0, false}, Case{"momentum", 0.9f, 0, 0, false},
                 Case{"dampening", 0.9f, 0.3f, 0, false},
                 Case{"nesterov, weight decay", 0.9f, 0, 0.01f, true}}) {
    SCOPED_TRACE(c.name);
    std::string text = R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[4,6] x) => (float[4,3] y)
<float[3,6] w = {W}, float[3] b = {B}>
{
  y = Gemm <transB = 1> (x, w, b)
})";
    FillWeights(text, {{"W", 18}, {"B", 3}}, 43, 0.5);
    pipelines::TrainingOptions t;
    t.loss.kind = "mse";
    t.loss.label_type = DType::kFloat32;
    t.optimizer.kind = "sgd";
    t.optimizer.lr = 0.1f;
    t.optimizer.momentum = c.momentum;
    t.optimizer.dampening = c.dampening;
    t.optimizer.nesterov = c.nesterov;
    t.optimizer.weight_decay = c.weight_decay;
    t.loss_scale = LossScaleOptions{};
    std::map<std::string, Tensor> state[2];
    size_t fused_calls = 0;
    for (int fuse = 0; fuse < 2; ++fuse) {
      ExecutorOptions o;
      o.fuse_optimizer = fuse != 0;
      auto ex = TrainingStep(text, t, OptLevel::kO1, DType::kFloat16, o);
      ASSERT_TRUE(ex.ok()) << ex.status().message();
      std::mt19937 inputs(41);
      for (double scale : {1.0, 2.0, 1e38, 0.5}) {
        Tensor x = Random(DType::kFloat32, {4, 6}, inputs);
        for (int64_t i = 0; i < x.num_elements(); ++i) x.SetDouble(i, x.GetDouble(i) * scale);
        ASSERT_TRUE((*ex)->SetInput("x", x).ok());
        ASSERT_TRUE((*ex)->SetInput("labels", Random(DType::kFloat32, {4, 3}, inputs)).ok());
        ASSERT_TRUE((*ex)->SetInput("lr", FloatScalar(0.1)).ok());
        Status st = (*ex)->Run();
        ASSERT_TRUE(st.ok()) << st.message();
      }
      if (fuse) fused_calls = CallsByOp(**ex)["ai.amp:FusedSgd"];
      auto v = FetchAll(**ex, (*ex)->StateNames());
      ASSERT_TRUE(v.ok()) << v.status().message();
      state[fuse] = *v;
    }
    EXPECT_EQ(fused_calls, 4u) << "fuse-optimizer did not fuse SGD";
    ASSERT_GE(state[0].size(), c.momentum != 0 ? 7u : 5u);  // w, b, [buffers,] scale, tracker, step
    ExpectSameBits(state[0], state[1]);
  }
}

// fuse-loss-scale: the scale, growth tracker and optimizer step count after
// each of seven steps, fused into ai.amp LossScaleUpdate and unfused, bit for
// bit: clean steps that grow the scale at the interval (2), a growth the max
// clamp holds, overflowing batches that back it off (and keep the step
// count), and a min clamp.
TEST(FuseLossScaleTest, TheScaleAndTrackerFollowTheUnfusedStepsBitForBit) {
  std::string text = R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[4] x) => (float[4] y)
<float[4] w = {1.0, -2.0, 0.5, 3.0}>
{
  y = Mul (x, w)
})";
  pipelines::TrainingOptions t;
  t.loss.kind = "mse";
  t.loss.label_type = DType::kFloat32;
  LossScaleOptions ls;
  ls.init_scale = 1024.0f;
  ls.growth_interval = 2;
  ls.max_scale = 4096.0f;
  ls.min_scale = 600.0f;
  ls.backoff_factor = 0.25f;
  t.loss_scale = ls;
  std::vector<std::pair<double, int64_t>> trace[2];
  std::vector<double> steps[2];
  size_t fused_calls = 0;
  for (int fuse = 0; fuse < 2; ++fuse) {
    ExecutorOptions o;
    o.fuse_optimizer = true;
    if (!fuse) o.disabled_passes = {"fuse-loss-scale"};
    auto ex = TrainingStep(text, t, OptLevel::kO0, DType::kFloat16, o);
    ASSERT_TRUE(ex.ok()) << ex.status().message();
    // 1e38 overflows the scaled loss: a skipped step.
    for (double x0 : {0.5, -1.5, 2.0, 0.25, 1e38, 1e38, 1.0}) {
      Tensor x(DType::kFloat32, {4}), labels(DType::kFloat32, {4});
      for (int64_t i = 0; i < 4; ++i) {
        x.SetDouble(i, x0 * (1 + i));
        labels.SetDouble(i, 0.1 * i);
      }
      ASSERT_TRUE((*ex)->SetInput("x", x).ok());
      ASSERT_TRUE((*ex)->SetInput("labels", labels).ok());
      ASSERT_TRUE((*ex)->SetInput("lr", FloatScalar(0.01)).ok());
      Status st = (*ex)->Run();
      ASSERT_TRUE(st.ok()) << st.message();
      auto v = FetchAll(**ex, {"loss_scale", "loss_scale.growth_tracker", "optimizer.step"});
      ASSERT_TRUE(v.ok()) << v.status().message();
      trace[fuse].emplace_back(v->at("loss_scale").GetDouble(0),
                               v->at("loss_scale.growth_tracker").GetInt(0));
      steps[fuse].push_back(v->at("optimizer.step").GetDouble(0));
    }
    if (fuse) fused_calls = CallsByOp(**ex)["ai.amp:LossScaleUpdate"];
  }
  EXPECT_EQ(fused_calls, 7u) << "fuse-loss-scale did not fuse";
  // Grown at step 2 (2048) and 4 (4096), held at the max, backed off twice
  // (1024, then 600 by the min clamp), one clean step.
  const std::vector<std::pair<double, int64_t>> want = {{1024, 1}, {2048, 0}, {2048, 1}, {4096, 0},
                                                        {1024, 0}, {600, 0},  {600, 1}};
  EXPECT_EQ(trace[0], want);
  EXPECT_EQ(trace[1], trace[0]);
  EXPECT_EQ(steps[0], (std::vector<double>{1, 2, 3, 4, 4, 4, 5}));
  EXPECT_EQ(steps[1], steps[0]);
}

// fuse-attention: an attention block's gradients (of q, k and v through
// parameters, so that the whole backward is built) and its output, fused
// into ai.amp Attention and AttentionGrad and unfused, bit for bit on random
// data: FP32 (O0) and O1 in fp16 and bf16, with and without an additive
// mask, k transposed by a Transpose (it becomes transB) or by the product.
TEST(FuseAttentionTest, AttentionAndItsGradientsAreTheUnfusedOnesBitForBit) {
  struct Case {
    const char* name;
    OptLevel level;
    DType half;
    bool mask;
    bool transpose;
  };
  for (Case c :
       {Case{"fp32", OptLevel::kO0, DType::kFloat16, false, true},
        Case{"fp32 mask", OptLevel::kO0, DType::kFloat16, true, false},
        Case{"fp16", OptLevel::kO1, DType::kFloat16, false, true},
        Case{"fp16 mask", OptLevel::kO1, DType::kFloat16, true, true},
        Case{"bf16 mask, k laid out [D, Sk]", OptLevel::kO1, DType::kBFloat16, true, false}}) {
    SCOPED_TRACE(c.name);
    // q [2,3,6,8], k [2,3,5,8], v [2,3,5,4]: scaled as PyTorch's
    // scaled_dot_product_attention export scales them (q and k by
    // sqrt(scale) each), so fold-into-gemm makes the product's alpha.
    std::string text = R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3,6,8] q, float[KSHAPE] k, float[2,3,5,4] v, float[2,1,1,5] mask) => (float[2,3,6,4] y)
<float[8] wq = {0.9, 1.1, 1.0, 0.8, 1.2, 0.95, 1.05, 0.7}, float[WKSHAPE] wk = {1.1, 0.9, 1.3, 0.6, 1.0, 0.85, 1.15, 0.75},
 float[4] wv = {0.5, 1.5, -1.0, 2.0}>
{
  c = Constant <value = float[1] {0.5946}> ()
  qs = Mul (q, wq)
  ks = Mul (k, wk)
  vs = Mul (v, wv)
  qc = Mul (qs, c)
  kc = Mul (ks, c)
  SCORES
  p = Softmax <axis = -1> (s2)
  y = MatMul (p, vs)
})";
    // k as [.., Sk, D] and a Transpose (it becomes transB), or laid out
    // [.., D, Sk] already.
    text.replace(text.find("KSHAPE"), 6, c.transpose ? "2,3,5,8" : "2,3,8,5");
    text.replace(text.find("WKSHAPE"), 7, c.transpose ? "8" : "8,1");
    std::string s = c.mask ? "s" : "s2";
    std::string scores =
        c.transpose ? "kt = Transpose <perm = [0, 1, 3, 2]> (kc)\n  " + s + " = MatMul (qc, kt)\n"
                    : s + " = MatMul (qc, kc)\n";
    if (c.mask) scores += "  s2 = Add (s, mask)";
    text.replace(text.find("SCORES"), 6, scores);
    std::map<std::string, Tensor> values[2];
    bool fused_ops = false;
    for (int fuse = 0; fuse < 2; ++fuse) {
      auto m = LoadModelText(text);
      ASSERT_TRUE(m.ok()) << m.status().message();
      pipelines::TrainingOptions t;
      t.loss.kind = "mse";
      t.loss.output = "y";
      t.loss.label_type = DType::kFloat32;
      t.gradients_only = true;
      PassPipeline p = pipelines::Training(t);
      PrecisionPolicy policy;
      policy.level = c.level;
      policy.half_type = c.half;
      p.Append(pipelines::ForLevel(policy));
      Status built = p.Run(*m).status();
      ASSERT_TRUE(built.ok()) << built.message();
      ExecutorOptions o;
      o.poison = true;
      o.profile = true;
      if (!fuse) o.disabled_passes = {"fuse-attention"};
      auto s = Executor::Create(std::move(*m), o);
      ASSERT_TRUE(s.ok()) << s.status().message();
      std::mt19937 rng(13);
      for (const Value* in : (*s)->model().graph->inputs()) {
        Tensor x = Random(in->dtype(), *StaticDims(*in->type().shape), rng);
        if (in->name() == "mask")  // -inf-free but large: keys 1 and 3 of batch 1 masked
          for (int64_t i = 0; i < x.num_elements(); ++i)
            x.SetDouble(i, i == 6 || i == 8 ? -1e4 : 0.1 * (i % 3));
        ASSERT_TRUE((*s)->SetInput(in->name(), x).ok());
      }
      Status st = (*s)->Run();
      ASSERT_TRUE(st.ok()) << st.message();
      for (const ProfileEntry& e : (*s)->ProfileByOp())
        if (e.key == "ai.amp:AttentionGrad" && fuse) fused_ops = true;
      for (const Value* out : (*s)->model().graph->outputs()) {
        auto v = (*s)->Fetch(out->name());
        ASSERT_TRUE(v.ok()) << out->name();
        values[fuse][out->name()] = *v;
      }
    }
    EXPECT_TRUE(fused_ops) << "fuse-attention did not fuse";
    ASSERT_GE(values[0].size(), 4u);  // loss and the gradients of wq, wk, wv
    for (const auto& [name, want] : values[0]) {
      const Tensor& got = values[1].at(name);
      ASSERT_EQ(got.nbytes(), want.nbytes());
      EXPECT_EQ(std::memcmp(got.data(), want.data(), want.nbytes()), 0) << name;
    }
  }
}

}  // namespace
}  // namespace amp

namespace amp {
namespace {

// The new fused kernels against a higher-precision reference: each ai.amp
// node in FP32 against the ops it stands for written out in float64, on
// the same random inputs (outputs poisoned first). Bound: 2e-5 relative to
// max(|want|, 1), what FP32 sums of these few-dozen-term reductions lose.
TEST(FusedKernelsTest, MatchTheirFloat64Composition) {
  struct Case {
    const char* name;
    const char* fused;      // float32, the ai.amp node
    const char* reference;  // float64, the ops it replaces
  };
  const Case cases[] = {
      {"attention with a mask, k as [Sk, D]",
       R"(<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (float[2,3,6,8] q, float[2,3,5,8] k, float[2,3,5,4] v, float[2,1,1,5] m) => (float[2,3,6,4] o)
{ o = ai.amp.Attention <alpha = 0.35, transB = 1> (q, k, v, m) })",
       R"(<ir_version: 8, opset_import: ["" : 18]>
g (double[2,3,6,8] q, double[2,3,5,8] k, double[2,3,5,4] v, double[2,1,1,5] m) => (double[2,3,6,4] o)
{
  a = Constant <value = double {0.35}> ()
  kt = Transpose <perm = [0, 1, 3, 2]> (k)
  s = MatMul (q, kt)
  sa = Mul (s, a)
  sm = Add (sa, m)
  p = Softmax <axis = -1> (sm)
  o = MatMul (p, v)
})"},
      {"attention backward, k as [D, Sk], dk as q^T . dS",
       R"(<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (float[2,6,8] q, float[2,8,5] k, float[2,5,4] v, float[2,6,4] d) => (float[2,6,8] dq, float[2,8,5] dk, float[2,5,4] dv)
{ dq, dk, dv = ai.amp.AttentionGrad <alpha = 0.5, grad_alpha = 0.5, transB = 0, dk_trans = 1> (q, k, v, d) })",
       R"(<ir_version: 8, opset_import: ["" : 18]>
g (double[2,6,8] q, double[2,8,5] k, double[2,5,4] v, double[2,6,4] d) => (double[2,6,8] dq, double[2,8,5] dk, double[2,5,4] dv)
{
  a = Constant <value = double {0.5}> ()
  axes = Constant <value = int64[1] {-1}> ()
  s = MatMul (q, k)
  sa = Mul (s, a)
  p = Softmax <axis = -1> (sa)
  vt = Transpose <perm = [0, 2, 1]> (v)
  dp = MatMul (d, vt)
  pt = Transpose <perm = [0, 2, 1]> (p)
  dv = MatMul (pt, d)
  t = Mul (dp, p)
  r = ReduceSum <keepdims = 1> (t, axes)
  u = Sub (dp, r)
  ds = Mul (u, p)
  kt = Transpose <perm = [0, 2, 1]> (k)
  dq0 = MatMul (ds, kt)
  dq = Mul (dq0, a)
  qt = Transpose <perm = [0, 2, 1]> (q)
  dk0 = MatMul (qt, ds)
  dk = Mul (dk0, a)
})"},
      {"LayerNorm's backward with a residual, and dx's column sums",
       R"(<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (float[6,16] x, float[6,16] dy, float[16] w, float[6,16] r) => (float[6,16] dx, float[16] dw, float[16] db, float[16] ds)
{ dx, dw, db, ds = ai.amp.LayerNormGrad <axis = 1, epsilon = 0.001> (x, dy, w, r) })",
       R"(<ir_version: 8, opset_import: ["" : 18]>
g (double[6,16] x, double[6,16] dy, double[16] w, double[6,16] r) => (double[6,16] dx, double[16] dw, double[16] db, double[16] ds)
{
  one = Constant <value = int64[1] {1}> ()
  zero = Constant <value = int64[1] {0}> ()
  eps = Constant <value = double {0.001}> ()
  mean = ReduceMean <keepdims = 1> (x, one)
  xc = Sub (x, mean)
  sq = Mul (xc, xc)
  var = ReduceMean <keepdims = 1> (sq, one)
  ve = Add (var, eps)
  sd = Sqrt (ve)
  inv = Reciprocal (sd)
  xh = Mul (xc, inv)
  g = Mul (dy, w)
  m1 = ReduceMean <keepdims = 1> (g, one)
  gx = Mul (g, xh)
  m2 = ReduceMean <keepdims = 1> (gx, one)
  a = Sub (g, m1)
  b = Mul (xh, m2)
  c = Sub (a, b)
  d = Mul (inv, c)
  dx = Add (d, r)
  t = Mul (dy, xh)
  dw = ReduceSum <keepdims = 0> (t, zero)
  db = ReduceSum <keepdims = 0> (dy, zero)
  ds = ReduceSum <keepdims = 0> (dx, zero)
})"},
      {"BatchNorm's backward (NCHW)",
       R"(<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (float[2,3,4,5] x, float[2,3,4,5] dy, float[3] w) => (float[2,3,4,5] dx, float[3] dw, float[3] db)
{ dx, dw, db = ai.amp.BatchNormGrad <epsilon = 0.001> (x, dy, w) })",
       R"(<ir_version: 8, opset_import: ["" : 18]>
g (double[2,3,4,5] x, double[2,3,4,5] dy, double[3] w) => (double[2,3,4,5] dx, double[3] dw, double[3] db)
{
  axes = Constant <value = int64[3] {0, 2, 3}> ()
  shape = Constant <value = int64[4] {1, 3, 1, 1}> ()
  eps = Constant <value = double {0.001}> ()
  mean = ReduceMean <keepdims = 1> (x, axes)
  xc = Sub (x, mean)
  sq = Mul (xc, xc)
  var = ReduceMean <keepdims = 1> (sq, axes)
  ve = Add (var, eps)
  sd = Sqrt (ve)
  inv = Reciprocal (sd)
  xh = Mul (xc, inv)
  wr = Reshape (w, shape)
  g = Mul (dy, wr)
  m1 = ReduceMean <keepdims = 1> (g, axes)
  gx = Mul (g, xh)
  m2 = ReduceMean <keepdims = 1> (gx, axes)
  a = Sub (g, m1)
  b = Mul (xh, m2)
  c = Sub (a, b)
  dx = Mul (inv, c)
  t = Mul (dy, xh)
  dw = ReduceSum <keepdims = 0> (t, axes)
  db = ReduceSum <keepdims = 0> (dy, axes)
})"},
      {"a GEMM with a bias and ReLU",
       R"(<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (float[6,8] x, float[5,8] w, float[5] b) => (float[6,5] y)
{ y = ai.amp.MatMulT <activation = "relu", alpha = 0.5, transB = 1> (x, w, b) })",
       R"(<ir_version: 8, opset_import: ["" : 18]>
g (double[6,8] x, double[5,8] w, double[5] b) => (double[6,5] y)
{
  h = Gemm <alpha = 0.5, transB = 1> (x, w, b)
  y = Relu (h)
})"},
      {"cross-entropy's gradient, a per-row scale (labels wrap as OneHot's do)",
       R"(<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (float[6,5] x, int64[6] labels, float[6,1] s) => (float[6,5] dx)
{ dx = ai.amp.SoftmaxCrossEntropyGrad (x, labels, s) })",
       R"(<ir_version: 8, opset_import: ["" : 18]>
g (double[6,5] x, int64[6] labels, double[6,1] s) => (double[6,5] dx)
{
  depth = Constant <value = int64 {5}> ()
  values = Constant <value = double[2] {0.0, 1.0}> ()
  y = OneHot <axis = 1> (labels, depth, values)
  p = Softmax <axis = 1> (x)
  e = Sub (p, y)
  dx = Mul (e, s)
})"},
      {"weight gradients with the bias gradient of either operand",
       R"(<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (float[6,5] dy, float[6,8] x, float[8,6] xt) => (float[5,8] dw, float[5] db, float[8,5] dw2, float[5] db2)
{
  dw, db = ai.amp.MatMulT <bias_grad = "A", transA = 1> (dy, x)
  dw2, db2 = ai.amp.MatMulT <bias_grad = "B"> (xt, dy)
})",
       R"(<ir_version: 8, opset_import: ["" : 18]>
g (double[6,5] dy, double[6,8] x, double[8,6] xt) => (double[5,8] dw, double[5] db, double[8,5] dw2, double[5] db2)
{
  dyt = Transpose (dy)
  dw = MatMul (dyt, x)
  rows = Constant <value = int64[1] {0}> ()
  db = ReduceSum <keepdims = 0> (dy, rows)
  dw2 = MatMul (xt, dy)
  db2 = ReduceSum <keepdims = 0> (dy, rows)
})"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto got = RunWith(c.fused, {}, 21);
    ASSERT_TRUE(got.ok()) << got.status().message();
    auto want = RunWith(c.reference, {}, 21);  // the same draws, held in float64
    ASSERT_TRUE(want.ok()) << want.status().message();
    int compared = 0;
    for (const auto& [name, w] : want->outputs) {
      const Tensor& g = got->outputs.at(name);
      ASSERT_EQ(g.dims(), w.dims()) << name;
      for (int64_t i = 0; i < w.num_elements(); ++i) {
        double a = g.GetDouble(i), b = w.GetDouble(i);
        ASSERT_FALSE(std::isnan(a)) << name << "[" << i << "] unwritten";
        EXPECT_LE(std::abs(a - b), 2e-5 * std::max(1.0, std::abs(b)))
            << name << "[" << i << "]: " << a << " vs float64 " << b;
        ++compared;
      }
    }
    EXPECT_GT(compared, 20);
  }
}

// Malformed ai.amp attention and norm-backward nodes are errors that name
// the node, at load (shape inference), never a crash in a kernel.
// ai.amp ConvWeightGrad against its definition summed in double on the
// same random x and dy: strided, padded and dilated along W, and along H a
// stride that leaves the product's last kernel row out (cut off), the same
// bound.
TEST(FusedKernelsTest, ConvWeightGradIsItsSumInDouble) {
  const int64_t n = 2, c = 3, h = 10, w = 8, o = 4, kh = 3, kw = 2, s = 2, p = 1;
  const int64_t dh = 1, dw = 2;
  const int64_t ho = (h + 2 * p - dh * (kh - 1) - 1) / s + 1;
  const int64_t wo = (w + 2 * p - dw * (kw - 1) - 1) / s + 1;
  ASSERT_GT((h + 2 * p - s * (ho - 1) - 1) / dh + 1, kh);  // the case the cut serves
  std::string text =
      "<ir_version: 8, opset_import: [\"\" : 17, \"ai.amp\" : 1]>\n"
      "g (float[2,3,10,8] x, float[2,4," +
      std::to_string(ho) + "," + std::to_string(wo) +
      "] dy) => (float[4,3,3,2] dw)\n"
      "{ dw = ai.amp.ConvWeightGrad <kernel_shape = [3, 2], strides = [2, 2], "
      "dilations = [1, 2], pads = [1, 1, 1, 1]> (x, dy) }";
  auto m = LoadModelText(text);
  ASSERT_TRUE(m.ok()) << m.status().message();
  ExecutorOptions opts;
  opts.mode = TrainingInfoMode::kForward;
  opts.poison = true;
  auto ex = Executor::Create(std::move(*m), opts);
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  std::mt19937 rng(47);
  Tensor x = Random(DType::kFloat32, {n, c, h, w}, rng);
  Tensor dy = Random(DType::kFloat32, {n, o, ho, wo}, rng);
  ASSERT_TRUE((*ex)->SetInput("x", x).ok());
  ASSERT_TRUE((*ex)->SetInput("dy", dy).ok());
  Status st = (*ex)->Run();
  ASSERT_TRUE(st.ok()) << st.message();
  auto got = (*ex)->Fetch("dw");
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->dims(), (std::vector<int64_t>{o, c, kh, kw}));
  for (int64_t oc = 0; oc < o; ++oc)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t i = 0; i < kh; ++i)
        for (int64_t j = 0; j < kw; ++j) {
          double want = 0;
          for (int64_t b = 0; b < n; ++b)
            for (int64_t y = 0; y < ho; ++y)
              for (int64_t z = 0; z < wo; ++z) {
                int64_t hi = y * s + i * dh - p, wi = z * s + j * dw - p;
                if (hi < 0 || hi >= h || wi < 0 || wi >= w) continue;
                want += x.GetDouble(((b * c + ch) * h + hi) * w + wi) *
                        dy.GetDouble(((b * o + oc) * ho + y) * wo + z);
              }
          double have = got->GetDouble(((oc * c + ch) * kh + i) * kw + j);
          EXPECT_LE(std::abs(have - want), 2e-5 * std::max(1.0, std::abs(want)))
              << "dw[" << oc << "," << ch << "," << i << "," << j << "] " << have << " vs " << want;
        }
}

// The view form's kernels against the plain form's on the same elements:
// q, k and v as column blocks of one [B, S, 14] tensor (two columns of it
// read by none), the forward writing O into columns 1-4 of a [B, S, 6]
// output and the backward writing dq, dk and dv packed into a [B, S, 14]
// gradient, on random data, outputs poisoned first: the values are the
// plain nodes' bit for bit and the elements no view covers are zero.
TEST(FusedKernelsTest, AttentionViewsAreThePlainAttentionsElements) {
  const std::string text = R"(<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (float[2,5,14] x, float[2,5,4] d) => (float[2,5,4] o, float[2,5,6] ov, float[2,5,4] dq,
                                       float[2,5,4] dk, float[2,5,4] dv, float[2,5,14] dx)
<int64[1] c0 = {0}, int64[1] c4 = {4}, int64[1] c8 = {8}, int64[1] c12 = {12}, int64[1] ax = {2}>
{
  q = Slice (x, c0, c4, ax)
  k = Slice (x, c4, c8, ax)
  v = Slice (x, c8, c12, ax)
  o = ai.amp.Attention <alpha = 0.5, transB = 1> (q, k, v)
  ov = ai.amp.Attention <alpha = 0.5, dims = [2, 5, 5, 4, 4], out_shapes = [3, 2, 5, 6],
                         views = [0, 70, 14, 1, 4, 70, 14, 1, 8, 70, 14, 1, 1, 30, 6, 1]> (x, x, x)
  dq, dk, dv = ai.amp.AttentionGrad <alpha = 0.5, grad_alpha = 0.5, transB = 1> (q, k, v, d)
  dx = ai.amp.AttentionGrad <alpha = 0.5, grad_alpha = 0.5, dims = [2, 5, 5, 4, 4],
                             out_shapes = [3, 2, 5, 14],
                             views = [0, 70, 14, 1, 4, 70, 14, 1, 8, 70, 14, 1, 0, 20, 4, 1,
                                      0, 70, 14, 1, 4, 70, 14, 1, 8, 70, 14, 1]> (x, x, x, d)
})";
  auto r = RunGraph(text, true, 41);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto& out = r->outputs;
  auto same = [](const Tensor& a, int64_t i, const Tensor& b, int64_t j) {
    float x = static_cast<float>(a.GetDouble(i)), y = static_cast<float>(b.GetDouble(j));
    return std::memcmp(&x, &y, sizeof x) == 0;
  };
  for (int64_t row = 0; row < 10; ++row) {
    for (int64_t c = 0; c < 6; ++c) {
      int64_t at = row * 6 + c;
      if (c >= 1 && c <= 4)
        EXPECT_TRUE(same(out.at("ov"), at, out.at("o"), row * 4 + c - 1)) << "ov " << at;
      else
        EXPECT_EQ(out.at("ov").GetDouble(at), 0.0) << "ov " << at << " is in no view";
    }
    for (int64_t c = 0; c < 14; ++c) {
      int64_t at = row * 14 + c;
      if (c >= 12) {
        EXPECT_EQ(out.at("dx").GetDouble(at), 0.0) << "dx " << at << " is in no view";
        continue;
      }
      const char* part = c < 4 ? "dq" : c < 8 ? "dk" : "dv";
      EXPECT_TRUE(same(out.at("dx"), at, out.at(part), row * 4 + c % 4)) << "dx " << at;
    }
  }
  // Views of one output that overlap are an error when the kernel runs.
  std::string overlap = text;
  overlap.replace(overlap.find("4, 70, 14, 1, 8, 70, 14, 1]>"), 28, "2, 70, 14, 1, 8, 70, 14, 1]>");
  auto bad = RunGraph(overlap, true, 41);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("overlap"), std::string::npos) << bad.status().message();
}

// Attention's second output is each query row's logsumexp of its scores
// (checked against float64 from the inputs, on random data with a mask),
// and an AttentionGrad given the forward's O and stats computes what it
// computes without them.
TEST(FusedKernelsTest, AttentionStatsAreTheScoresLogSumExp) {
  const std::string text = R"(<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (float16[2,3,6,8] q, float16[2,3,5,8] k, float16[2,3,5,4] v, float[2,1,1,5] m,
   float16[2,3,6,4] d) => (float16[2,3,6,4] o, float[2,3,6] st, float16[2,3,6,8] dq,
                           float16[2,3,5,8] dk, float16[2,3,5,4] dv, float16[2,3,6,8] dq2,
                           float16[2,3,5,8] dk2, float16[2,3,5,4] dv2, float16[2,3,6,4] o2)
{
  o, st = ai.amp.Attention <alpha = 0.35, transB = 1> (q, k, v, m)
  o2 = ai.amp.Attention <alpha = 0.35, transB = 1> (q, k, v, m)
  dq, dk, dv = ai.amp.AttentionGrad <alpha = 0.35, grad_alpha = 0.35, transB = 1> (q, k, v, d, m)
  dq2, dk2, dv2 = ai.amp.AttentionGrad <alpha = 0.35, grad_alpha = 0.35, transB = 1> (q, k, v, d, m, o, st)
})";
  auto model = LoadModelText(text);
  ASSERT_TRUE(model.ok()) << model.status().message();
  ExecutorOptions opts;
  opts.mode = TrainingInfoMode::kForward;
  opts.poison = true;
  auto made = Executor::Create(std::move(*model), opts);
  ASSERT_TRUE(made.ok()) << made.status().message();
  auto& s = *made;
  std::mt19937 rng(5);
  std::map<std::string, Tensor> in;
  for (const Value* v : s->model().graph->inputs()) {
    in[v->name()] = Random(v->dtype(), *StaticDims(*v->type().shape), rng);
    ASSERT_TRUE(s->SetInput(v->name(), in[v->name()]).ok());
  }
  ASSERT_TRUE(s->Run().ok());
  auto fetched = s->Fetch("st");
  ASSERT_TRUE(fetched.ok()) << fetched.status().message();
  const Tensor& st = *fetched;
  const Tensor &q = in["q"], &k = in["k"], &m = in["m"];
  double worst = 0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t i = 0; i < 6; ++i) {
        std::vector<double> x(5);
        double peak = -INFINITY, sum = 0;
        for (int64_t j = 0; j < 5; ++j) {
          double acc = 0;
          for (int64_t e = 0; e < 8; ++e)
            acc += q.GetDouble(((b * 3 + h) * 6 + i) * 8 + e) *
                   k.GetDouble(((b * 3 + h) * 5 + j) * 8 + e);
          x[j] = 0.35 * acc + m.GetDouble(b * 5 + j);
          peak = std::max(peak, x[j]);
        }
        for (double e : x) sum += std::exp(e - peak);
        double want = peak + std::log(sum);
        double got = st.GetDouble((b * 3 + h) * 6 + i);
        worst = std::max(worst, std::abs(got - want) / std::max(1.0, std::abs(want)));
      }
  EXPECT_LT(worst, 1e-6) << "float32 scores of float16 products: a few float32 ulps";
  // The same O with or without the stats output; the same gradients with or
  // without the forward's O and stats (the CPU kernel recomputes them).
  for (const char* a : {"o", "dq", "dk", "dv"}) {
    auto fx = s->Fetch(a), fy = s->Fetch(std::string(a) + "2");
    ASSERT_TRUE(fx.ok() && fy.ok());
    const Tensor &x = *fx, &y = *fy;
    ASSERT_EQ(x.num_elements(), y.num_elements());
    for (int64_t i = 0; i < x.num_elements(); ++i)
      ASSERT_EQ(x.GetDouble(i), y.GetDouble(i)) << a << " " << i;
  }
}

// Where cuDNN's fused attention runs a node (ops/attention.h), on the layout
// of the benchmark Transformer's attention at a small size: q, k, v heads of
// a sequence-first packed QKV tensor [S, B, 3 * H * D], O into [S * B, H * D].
StatusOr<CudnnAttentionLayout> CudnnLayoutOfNode(const std::string& text, const char* op) {
  AMP_ASSIGN_OR_RETURN(Model m, LoadModelText(text));
  for (const Node* n : m.graph->nodes()) {
    if (n->op_type() != op) continue;
    AttentionAttrs attrs = AttentionAttrs::Of(*n);
    std::vector<std::vector<int64_t>> dims;
    AttentionTypes types;
    std::optional<std::vector<int64_t>> mask;
    for (size_t i = 0; i < n->num_inputs(); ++i) {
      const Value* v = n->input(i);
      dims.push_back(v ? *StaticDimsOf(v) : std::vector<int64_t>{});
      types.inputs.push_back(v ? v->dtype() : DType::kUndefined);
      if (v && i == (attrs.grad ? 4u : 3u)) mask = dims.back();
    }
    for (const Value* v : n->outputs()) types.outputs.push_back(v->dtype());
    if (mask) types.mask_dims = &*mask;
    AMP_ASSIGN_OR_RETURN(AttentionLayout l, AttentionLayoutOf(attrs, dims));
    EXPECT_EQ(RunsAsCudnnAttention(*n), CudnnAttentionLayoutOf(attrs, l, types).ok());
    return CudnnAttentionLayoutOf(attrs, l, types);
  }
  return NotFound("no ", op);
}

TEST(CudnnAttentionTest, TheBenchmarkTransformersLayoutIsCudnns) {
  const std::string text = R"(<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (T[16,2,72] x, T[32,24] d, M[16,16] m) => (T[32,24] o, float[2,3,16] st, T[16,2,72] dx)
{
  o, st = ai.amp.Attention <alpha = 0.35, dims = [2, 3, 16, 16, 8, 8], out_shapes = [2, 32, 24],
                            views = [0, 72, 8, 144, 1, 24, 72, 8, 144, 1, 48, 72, 8, 144, 1,
                                     0, 24, 8, 48, 1]> (x, x, x, MASK)
  dx = ai.amp.AttentionGrad <alpha = 0.35, grad_alpha = GA, dims = [2, 3, 16, 16, 8, 8],
                             out_shapes = [3, 16, 2, 72],
                             views = [0, 72, 8, 144, 1, 24, 72, 8, 144, 1, 48, 72, 8, 144, 1,
                                      0, 24, 8, 48, 1, 0, 72, 8, 144, 1, 24, 72, 8, 144, 1,
                                      48, 72, 8, 144, 1, 0, 24, 8, 48, 1]> (x, x, x, d, MASK, o, st)
})";
  auto make = [&](const char* t, const char* mask_type, const char* mask, const char* ga) {
    std::string s = text;
    for (auto [from, to] : {std::pair{"T[", t}, {"M[", mask_type}, {"MASK", mask}, {"GA", ga}})
      for (size_t at; (at = s.find(from)) != std::string::npos;)
        s.replace(at, std::string(from).size(), std::string(to) + (from[1] == '[' ? "[" : ""));
    return s;
  };
  const std::string fp16 = make("float16", "float16", "m", "0.35");
  for (const char* op : {"Attention", "AttentionGrad"}) {
    SCOPED_TRACE(op);
    auto c = CudnnLayoutOfNode(fp16, op);
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ(c->b, 2);
    EXPECT_EQ(c->h, 3);
    EXPECT_EQ(c->sq, 16);
    EXPECT_EQ(c->d, 8);
    const BhsdTensor& q = c->operands[kAttnQ];
    EXPECT_EQ(std::vector<int64_t>(q.strides, q.strides + 4),
              (std::vector<int64_t>{72, 8, 144, 1}));
    EXPECT_EQ(c->operands[kAttnK].offset, 24);
    EXPECT_EQ(c->operands[kAttnV].offset, 48);
    const BhsdTensor& o = c->operands[std::string(op) == "Attention" ? kAttnO : kAttnFwdO];
    EXPECT_EQ(std::vector<int64_t>(o.strides, o.strides + 4), (std::vector<int64_t>{24, 8, 48, 1}));
    EXPECT_EQ(std::vector<int64_t>(c->stats.strides, c->stats.strides + 3),
              (std::vector<int64_t>{48, 16, 1}));
    // The [Sq, Sk] mask broadcast over batch and heads.
    ASSERT_TRUE(c->has_bias);
    EXPECT_EQ(std::vector<int64_t>(c->bias.dims, c->bias.dims + 4),
              (std::vector<int64_t>{1, 1, 16, 16}));
    EXPECT_EQ(c->bias.strides[2], 16);
  }
  // What cuDNN does not take runs on amp's own kernels, and says why.
  struct No {
    std::string text;
    const char* op;
    const char* why;
  };
  std::string unlinked = make("float16", "float16", "m", "0.35");
  const std::string linked = "48, 72, 8, 144, 1, 0, 24, 8, 48, 1]> (x, x, x, d, m, o, st)";
  unlinked.replace(unlinked.find(linked), linked.size(), "48, 72, 8, 144, 1]> (x, x, x, d, m)");
  const No no[] = {
      {make("float", "float", "m", "0.35"), "Attention", "not float16 or bfloat16"},
      {make("float16", "float", "m", "0.35"), "Attention", "a mask not of q's type"},
      {make("float16", "float16", "m", "0.25"), "AttentionGrad", "a gradient scale other"},
      {unlinked, "AttentionGrad", "does not read the forward's O and stats"},
  };
  for (const No& n : no) {
    SCOPED_TRACE(n.why);
    auto c = CudnnLayoutOfNode(n.text, n.op);
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.status().message().find(n.why), std::string::npos) << c.status().message();
  }
  // Head dims cuDNN has no engine for, and batch dims that fold into more
  // than two.
  const std::string small = R"(<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (float16[2,3,4,6,12] q, float16[2,3,4,5,12] k, float16[2,3,4,5,16] v) => (float16[2,3,4,6,16] o) {
  o = ai.amp.Attention <transB = 1> (q, k, v) })";
  auto head = CudnnLayoutOfNode(small, "Attention");
  ASSERT_FALSE(head.ok());
  EXPECT_NE(head.status().message().find("head dims 12 and 16"), std::string::npos);
  std::string folded = small;
  for (size_t at; (at = folded.find(",12]")) != std::string::npos;) folded.replace(at, 4, ",16]");
  auto three = CudnnLayoutOfNode(folded, "Attention");
  ASSERT_TRUE(three.ok()) << "contiguous batch dims fold: " << three.status().message();
  EXPECT_EQ(three->b * three->h, 24);
}

// The op case the GPU test runs through cuDNN does fit it.
TEST(CudnnAttentionTest, TheGpuTestsCaseRunsAsCudnnsAttention) {
  const Case* c = nullptr;
  for (const Case& k : kCases)
    if (std::string(k.name) == "attention_cudnn_f16") c = &k;
  ASSERT_NE(c, nullptr);
  auto m = LoadModelText(
      std::string("<ir_version: 8, opset_import: [\"\" : 18, \"ai.amp\" : 1]>\n") + c->text);
  ASSERT_TRUE(m.ok()) << m.status().message();
  int fits = 0;
  for (const Node* n : m->graph->nodes()) fits += RunsAsCudnnAttention(*n);
  EXPECT_EQ(fits, 2);
  // (And the CPU, its reference there, runs it.)
  auto r = RunGraph(
      std::string("<ir_version: 8, opset_import: [\"\" : 18, \"ai.amp\" : 1]>\n") + c->text, true,
      3);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(std::isfinite(r->outputs.at("dx").GetDouble(5)));
}

TEST(FusedKernelsTest, MalformedNodesAreErrors) {
  struct Bad {
    const char* node;
    const char* message;
  };
  const Bad bad[] = {
      {"o = ai.amp.Attention <transB = 1> (q, q, v)", "do not make an attention"},
      {"o = ai.amp.Attention <transB = 1> (q, k, x)", "must have one rank"},
      {"o = ai.amp.Attention <transB = 1, out_type = 7> (q, k, v)", "must name float types"},
      {"o, dk, dv = ai.amp.AttentionGrad <transB = 1, out_types = [1, 1, 6]> (q, k, v, q)",
       "must name float types"},
      {"o = ai.amp.Attention <dims = [6, 5], views = [0], out_shapes = [1, 1]> (q, k, v)",
       "dims must be [batch..., Sq, Sk, D, Dv]"},
      {"o = ai.amp.Attention <dims = [2, 6, 5, 8, 4], views = [0, 48, 8, 1], out_shapes = [3, 2, "
       "6, 4]> (q, k, v)",
       "views needs 16 ints"},
      {"o = ai.amp.Attention <dims = [2, 6, 5, 8, 4], views = [90, 48, 8, 1, 0, 40, 8, 1, 0, 20, "
       "4, 1, 0, 24, 4, 1], out_shapes = [3, 2, 6, 4]> (q, k, v)",
       "the view of q reaches element"},
      {"o = ai.amp.Attention <dims = [2, 6, 5, 8, 4], views = [0, 48, 8, 1, 0, 40, 8, 1, 0, 20, "
       "4, 1, 0, 24, 4, 1], out_shapes = [3, 2, 6, 3]> (q, k, v)",
       "the view of O reaches element"},
      {"o = ai.amp.Attention <dims = [2, 6, 5, 8, 4], views = [0, 48, 8, 1, 0, 40, 8, 1, 0, 20, "
       "4, 1, 0, 24, 4, 1], out_shapes = [3, 2, 6, 4, 1, 5]> (q, k, v)",
       "out_shapes gives 2 shapes for 1 outputs"},
      {"o = ai.amp.Attention <transB = 0, dims = [2, 6, 5, 8, 4], views = [0, 48, 8, 1, 0, 40, 8, "
       "1, 0, 20, 4, 1, 0, 24, 4, 1], out_shapes = [3, 2, 6, 4]> (q, k, v)",
       "the view form takes no transB"},
      {"o = ai.amp.Attention <dims = [2, 6, -5, 8, 4], views = [0], out_shapes = [1, 1]> (q, k, v)",
       "dims has a negative dim"},
      {"o = ai.amp.Attention <dims = [2, 6, 5, 8, 4], views = [0, 48, 8, 1, 0, 40, 8, 1, 0, 20, "
       "4, 1, 0, 24, 4, 1], out_shapes = [3, 2, -6, 4]> (q, k, v)",
       "out_shapes has a negative dim"},
      {"o = ai.amp.Attention <dims = [2, 6, 5, 8, 4], views = [0, 48, 8, 1, 0, 40, 8, 1, 0, 20, "
       "4, 1, 0, 24, 4, 1], out_shapes = [3, 2, 6, 4, 2]> (q, k, v)",
       "out_shapes is not a list of ranks and dims"},
      {"o = ai.amp.AttentionGrad <out_types = [1, 10, 1], dims = [2, 6, 5, 8, 4], views = [0, 48, "
       "8, 1, 0, 40, 8, 1, 0, 20, 4, 1, 0, 24, 4, 1, 0, 48, 8, 1, 0, 40, 8, 1, 0, 20, 4, 1], "
       "out_shapes = [3, 2, 6, 8]> (q, k, v, q)",
       "a packed gradient has one type: out_types differ"},
      {"o, a = ai.amp.AttentionGrad (q, k, v, q)", "has dq, dk and dv, or one packed gradient"},
      {"o = ai.amp.AttentionGrad (q, k, v, q)", "has one output only in the view form"},
      {"o, a, b = ai.amp.AttentionGrad <transB = 1> (q, k, v, v2, , v2)",
       "reads the forward's O and stats together"},
      {"o, a, b = ai.amp.AttentionGrad <transB = 1> (q, k, v, v2, , v2, ti)",
       "stats (input 6) must be float32"},
      {"o, a, b = ai.amp.AttentionGrad <transB = 1> (q, k, v, v2, , v2, p)", "not [batch..., Sq]"},
      {"o, a = ai.amp.BatchNormGrad (x, x, x)", "channel axis"},
      {"o, a = ai.amp.BatchNormGrad <dx_type = 7> (q, q, x)", "dx_type must be a float type"},
      {"o, a, b, e, d = ai.amp.LayerNormGrad <axis = 1> (p, p, w)", "needs copy_type"},
      {"o, a, b, e, d = ai.amp.LayerNormGrad <axis = 1, copy_type = 7> (p, p, w)",
       "copy_type must be a float type"},
      {"o = ai.amp.LayerNormalization (p, w)", "needs y_type"},
      {"o = ai.amp.LayerNormalization <y_type = 6> (p, w)", "y_type must be a float type"},
      {"o = ai.amp.MatMulT <activation = \"gelu\"> (p, w)", "is not one amp runs"},
      {"o = ai.amp.SoftmaxCrossEntropyGrad (q, l, s)", "logits must be 2-D"},
      {"o = ai.amp.MaxPoolGrad <kernel_shape = [3, 3]> (l, c)", "must be a floating-point"},
      {"o = ai.amp.MaxPoolGrad <kernel_shape = [3, 3]> (c2, c)", "but MaxPool of x"},
      {"o = ai.amp.MaxPoolGrad <kernel_shape = [3]> (c, c)", "must have rank 3"},
      {"o = ai.amp.MaxPoolGrad (c, c)", "kernel_shape is required"},
      {"o = ai.amp.MaxPoolGrad <kernel_shape = [1, 1], out_type = 7> (c, c)",
       "out_type must be a float type"},
      {"o = ai.amp.MaxPoolGrad <kernel_shape = [1, 1], storage_order = 1> (c, c)",
       "needs storage_order 0"},
      {"o = ai.amp.ConvWeightGrad <kernel_shape = [3]> (q, q)", "needs 2-D kernel_shape"},
      {"o = ai.amp.ConvWeightGrad <kernel_shape = [3, 3]> (q, q)", "must be 4-D"},
      {"o = ai.amp.ConvWeightGrad <kernel_shape = [3, 3], strides = [0, 1]> (c, c)",
       "must be positive"},
      {"o = ai.amp.ConvWeightGrad <kernel_shape = [3, 3]> (c, c)", "are not the Conv output"},
      {"o = ai.amp.ConvWeightGrad <kernel_shape = [3, 3]> (c, c3)", "different batch sizes"},
      {"o = ai.amp.ConvWeightGrad <kernel_shape = [3, 3], out_type = 10> (c, c2)",
       "out_type must be float32 or x's type"},
      {"o, a = ai.amp.LossScaleUpdate <growth_interval = 10> (x, ti, fb)",
       "input 0 must be a scalar of type float, not float[8]"},
      {"o, a = ai.amp.LossScaleUpdate <growth_interval = 10> (s, s, fb)",
       "input 1 must be a scalar of type int64"},
      {"o, a = ai.amp.LossScaleUpdate <growth_interval = 0> (s, ti, fb)",
       "growth_interval must be at least 1"},
      {"o = ai.amp.FusedSgd (s, s, fb, x, x, x)", "expects lr, step, skip and 2 groups"},
      {"o = ai.amp.FusedSgd <momentum = 0.9> (s, s, fb, x, x, x)", "expects 2 outputs for 1"},
      {"o = ai.amp.SoftmaxCrossEntropyGrad (p, p, s)", "labels must be int32 or int64"},
      {"o = ai.amp.SoftmaxCrossEntropyGrad (p, l, p)", "scale must broadcast to [N, 1]"},
      {"o, a = ai.amp.SoftmaxCrossEntropyGrad (p, l, s)", "needs half_type"},
      {"o, a = ai.amp.SoftmaxCrossEntropy (ti, l, s)", "logits must be float32, float16"},
      {"o, a = ai.amp.SoftmaxCrossEntropy (p, l, ti)", "scale must be float32"},
      {"o, a = ai.amp.SoftmaxCrossEntropy (p, p, s)", "labels must be int32 or int64"},
      {"o = ai.amp.AnyNonFinite (x, ti)", "input 1 must be a float tensor"},
      {"o, a = ai.amp.AnyNonFinite (x)", "AnyNonFinite gives 1 to 1"},
      {"o, a = ai.amp.SoftmaxCrossEntropy <reduction = \"none\"> (p, l, s)",
       "reduction must be mean or sum"},
      {"o, a = ai.amp.SoftmaxCrossEntropy <scale_divisor = 0.0> (p, l, s)", "scale_divisor is 0"},
      {"o, a, b = ai.amp.SoftmaxCrossEntropy (p, l, s)", "needs half_type"},
      {"o, a = ai.amp.LossScaleUpdate <growth_interval = 10> (s, ti, fb, s)",
       "expects 3 outputs for 4 inputs"},
      {"o, a, b = ai.amp.LossScaleUpdate <growth_interval = 10> (s, ti, fb, ti)",
       "input 3 must be a scalar of type float"},
      {"o = ai.amp.MatMulT <transB = 1> (q, k, x)", "needs B 2-D"},
      {"o = ai.amp.MatMulT (p, w, v)", "not one value per output column"},
      {"o = ai.amp.MatMulT (p, w, x16)", "bias has type"},
      {"o, a = ai.amp.MatMulT (p, w)", "a second output needs bias_grad"},
      {"o = ai.amp.MatMulT <bias_grad = \"A\"> (p, w)", "need a second output"},
      {"o, a = ai.amp.MatMulT <relu_mask = 1> (p, w)", "relu_mask needs activation relu"},
      {"o = ai.amp.MatMulT <activation = \"drelu\"> (p, w)", "drelu needs the forward's mask"},
      {"o = ai.amp.MatMulT <activation = \"drelu\"> (p, w, , x)", "the ReLU mask must be uint8"},
      {"o, a = ai.amp.MatMulT <bias_grad = \"C\"> (p, w)", "bias_grad is"},
      {"o, a = ai.amp.MatMulT <bias_grad = \"A\", transB = 1> (q, w)", "needs 2-D operands"},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.node);
    std::string text = std::string(R"(<ir_version: 8, opset_import: ["" : 17, "ai.amp" : 1]>
g (float[2,6,8] q, float[2,5,8] k, float[2,5,4] v, float[8] x, float[3,6] p, float[6,8] w,
   float16[8] x16, int64[3] l, float s, float[2,3,5,5] c, float[2,4,3,3] c2, float[3,4,3,3] c3,
   int64 ti, bool fb, float[2,6,4] v2) => (float o)
{ )") + b.node + " }";
    auto m = LoadModelText(text);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find(b.message), std::string::npos) << m.status().message();
  }
}

}  // namespace
}  // namespace amp
