// Every pass is idempotent (a second run changes nothing, as ONNX Runtime's
// transformer tests require), keeps the IR verifying, and the pipeline names
// the pass that fails.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "compiler/loader.h"
#include "compiler/onnx_export.h"
#include "compiler/text.h"
#include "compiler/verifier.h"
#include "onnx/onnx_pb.h"
#include "passes/fuse_optimizer.h"
#include "passes/pipelines.h"
#include "passes/precision_report.h"
#include "passes/registry.h"

namespace amp {
namespace {

struct Case {
  std::string model;
  std::string file;
};

class PassesOnModels : public ::testing::TestWithParam<Case> {};

StatusOr<Model> LoadShipped(const Case& c) {
  return LoadModel(std::string(AMP_SOURCE_DIR) + "/models/" + c.model + "/" + c.file);
}

// ONNX's Gradient node (as another producer writes it) of the first output
// with respect to the first float initializer: what expand-gradient expands.
void AddGradientNode(Model& m) {
  Graph& g = *m.graph;
  const Value* x = nullptr;
  for (const Value* v : g.initializers())
    if (!x && v->dtype() == DType::kFloat32) x = v;
  ASSERT_NE(x, nullptr);
  Node* n = g.AddNode("Gradient", {const_cast<Value*>(x)}, {"d_" + x->name()},
                      "ai.onnx.preview.training");
  Attribute xs;
  xs.kind = Attribute::Kind::kStrings;
  xs.strings = {x->name()};
  n->SetAttr("xs", xs);
  n->SetAttr("y", Attribute::String(g.outputs()[0]->name()));
  n->output(0)->set_type(x->type());
  g.AddOutput(n->output(0));
  m.opsets.push_back({"ai.onnx.preview.training", 1});
}

// What dce and infer-shapes have to do on a model as exported: a node no
// output reads, and a value whose type was forgotten.
void AddDeadNode(Model& m) {
  Graph& g = *m.graph;
  g.AddNode("Neg", {g.outputs()[0]}, {"dead"})->output(0)->set_type(g.outputs()[0]->type());
}
void ForgetAType(Model& m) {
  for (Node* n : m.graph->nodes())
    if (n->op_type() != "Constant") {
      n->output(0)->mutable_type().shape.reset();
      return;
    }
}

// Runs `pass` (after what it needs) on `c`, then again: whether the first
// run changed the model; the second must change nothing.
void RunTwice(const Case& c, const std::string& pass, bool* changed_first) {
  PassOptions options;
  options.dim_bindings["batch"] = 4;
  options.dim_bindings["s0"] = 4;   // the dynamo exporter's name for the batch dim
  options.optimizer.kind = "adam";  // what fuse-optimizer fuses
  // Passes that need others before them (the training step is built in order).
  const std::map<std::string, std::string> prerequisites = {
      {"autodiff", "attach-loss"},
      {"loss-scaling", "attach-loss,autodiff"},
      {"data-parallel", "attach-loss,autodiff"},
      {"optimizer", "attach-loss,autodiff,loss-scaling"},
      {"fuse-unscale", "attach-loss,autodiff,loss-scaling,optimizer"},
      {"fuse-optimizer", "attach-loss,autodiff,loss-scaling,optimizer"},
      {"fuse-loss-scale", "attach-loss,autodiff,loss-scaling,optimizer"},
      {"fuse-gemm-epilogue", "bind-dims,fold-shapes,attach-loss,autodiff,dce"},
      {"fuse-cross-entropy", "bind-dims,fold-shapes,attach-loss,autodiff,dce"},
      {"fuse-conv-weight-grad", "bind-dims,fold-shapes,attach-loss,autodiff,dce"},
      {"fuse-max-pool-grad", "bind-dims,fold-shapes,attach-loss,autodiff,dce"},
      {"insert-casts", "paint-precision"},
      {"fold-casts", "paint-precision,insert-casts"},
      {"batch-casts", "bind-dims,fold-shapes,paint-precision,insert-casts"},
      {"fuse-norm-grad", "attach-loss,autodiff,dce"},
      {"sink-nodes", "bind-dims,fold-shapes,attach-loss,autodiff"},
      {"fuse-attention", "bind-dims,fold-shapes,attach-loss,autodiff,dce,transpose-folding"},
      {"fold-attention-views",
       "bind-dims,fold-shapes,attach-loss,autodiff,dce,transpose-folding,fuse-attention"},
      {"guard-nonfinite", "attach-loss,autodiff,optimizer"},
      {"link-attention-stats",
       "bind-dims,fold-shapes,attach-loss,autodiff,dce,transpose-folding,fuse-attention,"
       "fold-attention-views"},
      {"rematerialize", "bind-dims,fold-shapes,attach-loss,autodiff,dce"},
      {"fold-output-casts",
       "bind-dims,fold-shapes,attach-loss,autodiff,dce,paint-precision,insert-casts,fold-casts,"
       "fuse-norm-grad"},
  };
  auto m = LoadShipped(c);
  ASSERT_TRUE(m.ok()) << m.status().message();
  if (pass == "expand-gradient") AddGradientNode(*m);
  if (pass == "dce") AddDeadNode(*m);
  if (pass == "infer-shapes") ForgetAType(*m);
  auto it = prerequisites.find(pass);
  if (it != prerequisites.end()) {
    auto before = BuildPipeline(it->second, options);
    ASSERT_TRUE(before.ok());
    auto ran = before->Run(*m);
    ASSERT_TRUE(ran.ok()) << pass << ": " << ran.status().message();
  }
  auto first = BuildPipeline(pass, options);
  ASSERT_TRUE(first.ok());
  auto changed = first->Run(*m);
  ASSERT_TRUE(changed.ok()) << pass << ": " << changed.status().message();
  *changed_first = *changed;
  std::string after_first = PrintModel(*m);
  auto second = BuildPipeline(pass, options);
  auto changed_again = second->Run(*m);
  ASSERT_TRUE(changed_again.ok()) << changed_again.status().message();
  EXPECT_FALSE(*changed_again) << pass << " changed the model on its second run";
  EXPECT_EQ(PrintModel(*m), after_first) << pass;
}

TEST_P(PassesOnModels, EachPassIsIdempotent) {
  for (const std::string& pass : RegisteredPassNames()) {
    bool changed = false;
    RunTwice(GetParam(), pass, &changed);
  }
}

// The idempotence above is only worth something where a pass does change
// the model: every registered pass changes at least one shipped model.
TEST(PassesTest, EveryPassChangesAShippedModel) {
  const std::vector<Case> models = {{"mlp", "model.onnx"},
                                    {"cnn", "model.onnx"},
                                    {"tfm", "model.onnx"},
                                    {"tfm", "model.dynamo_eval.onnx"}};
  // Inference-form BatchNorm, what train-mode rewrites (the other passes need
  // it run first: their gradient has no inference form).
  const Case dynamo_cnn = {"real/mobilenet_v3_small_dynamo", "model.onnx"};
  for (const std::string& pass : RegisteredPassNames()) {
    std::vector<std::string> changed_on;
    std::vector<Case> on = models;
    if (pass == "train-mode") on.push_back(dynamo_cnn);
    for (const Case& c : on) {
      bool changed = false;
      RunTwice(c, pass, &changed);
      if (changed) changed_on.push_back(c.model + "/" + c.file);
    }
    EXPECT_FALSE(changed_on.empty()) << pass << " changed none of the shipped models";
  }
}

// The whole O1 pipeline, run again on its own output, changes nothing.
TEST_P(PassesOnModels, O1PipelineIsIdempotent) {
  PassOptions options;
  auto m = LoadModel(std::string(AMP_SOURCE_DIR) + "/models/" + GetParam().model + "/" +
                     GetParam().file);
  ASSERT_TRUE(m.ok());
  PassPipeline first = pipelines::ForLevel(options.precision);
  ASSERT_FALSE(first.empty());
  auto changed = first.Run(*m);
  ASSERT_TRUE(changed.ok()) << changed.status().message();
  EXPECT_TRUE(*changed);
  std::string once = PrintModel(*m);
  PassPipeline second = pipelines::ForLevel(options.precision);
  auto again = second.Run(*m);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_FALSE(*again);
  EXPECT_EQ(PrintModel(*m), once);
}

TEST_P(PassesOnModels, FoldingAfterBindingLeavesNoShapeOps) {
  PassOptions options;
  options.dim_bindings["batch"] = 4;
  auto m = LoadModel(std::string(AMP_SOURCE_DIR) + "/models/" + GetParam().model + "/" +
                     GetParam().file);
  ASSERT_TRUE(m.ok());
  PassPipeline p = pipelines::BindShapes(options.dim_bindings);
  ASSERT_TRUE(p.Run(*m).ok());
  for (const Node* n : m->graph->nodes()) {
    EXPECT_NE(n->op_type(), "Shape") << n->Describe();
    for (const Value* out : n->outputs())
      EXPECT_TRUE(out->type().has_static_shape()) << n->Describe();
  }
}

INSTANTIATE_TEST_SUITE_P(Models, PassesOnModels,
                         ::testing::Values(Case{"mlp", "model.onnx"}, Case{"cnn", "model.onnx"},
                                           Case{"tfm", "model.onnx"},
                                           Case{"tfm", "model.dynamo_eval.onnx"}),
                         [](const auto& info) {
                           std::string f =
                               info.param.file == "model.onnx" ? "torchscript" : "dynamo";
                           return info.param.model + "_" + f;
                         });

TEST(PipelineTest, UnknownPassIsAnError) {
  auto p = BuildPipeline("dce,no-such-pass", {});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("unknown pass 'no-such-pass' (known passes: "),
            std::string::npos);
}

// amp's pipelines, in the order the docs give.
TEST(PipelineTest, TypedPipelinesRunThePassesInOrder) {
  PrecisionPolicy o1, o0;
  o0.level = OptLevel::kO0;
  EXPECT_EQ(pipelines::ForLevel(o1).Describe(),
            "fold-shapes,dce,paint-precision,insert-casts,fold-casts,dce");
  EXPECT_TRUE(pipelines::ForLevel(o0).empty());
  EXPECT_EQ(pipelines::BindShapes({{"N", 2}}).Describe(), "bind-dims,fold-shapes,dce");
  pipelines::TrainingOptions t;
  EXPECT_EQ(pipelines::Training(t).Describe(), "fold-shapes,attach-loss,autodiff,optimizer,dce");
  t.loss_scale = LossScaleOptions{};
  EXPECT_EQ(pipelines::Training(t).Describe(),
            "fold-shapes,attach-loss,autodiff,loss-scaling,optimizer,dce");
  t.gradients_only = true;
  EXPECT_EQ(pipelines::Training(t).Describe(), "fold-shapes,attach-loss,autodiff,dce");
  EXPECT_EQ(pipelines::Specialize({{{"N", 2}}, false}).Describe(),
            "transpose-folding,bind-dims,fold-shapes,dce,elide-dropout,fold-into-gemm,sink-nodes");
  EXPECT_EQ(pipelines::Specialize({{}, true}).Describe(),
            "fuse-unscale,fuse-optimizer,transpose-folding,bind-dims,fold-shapes,dce,elide-dropout,"
            "fold-into-gemm,sink-nodes");
  pipelines::SpecializeOptions all;
  all.fuse_attention = all.fuse_norm_grad = all.fold_output_casts = all.fuse_elementwise = true;
  EXPECT_EQ(pipelines::Specialize(all).Describe(),
            "transpose-folding,bind-dims,fold-shapes,dce,elide-dropout,fold-into-gemm,fuse-"
            "attention,fold-casts,fold-attention-views,fuse-norm-grad,fold-output-casts,"
            "rematerialize,fuse-elementwise,batch-casts,sink-nodes");
  EXPECT_EQ(pipelines::Lower().Describe(), "expand-gradient");
  // Every pass a pipeline names is in the registry.
  for (const std::string& name : RegisteredPassNames()) EXPECT_TRUE(CheckPassName(name).ok());
  EXPECT_FALSE(CheckPassName("no-such-pass").ok());
}

TEST(PipelineTest, DisablePassAndPrintAfter) {
  const char* text = R"(<ir_version: 8, opset_import: ["" : 17]>
main (float[2] x) => (float[2] y) { d = Neg (x)
 y = Relu (x) })";
  auto m = LoadModelText(text);
  ASSERT_TRUE(m.ok()) << m.status().message();
  std::ostringstream printed;
  PassPipeline p = pipelines::BindShapes({});
  p.set_debug({{"fold-shapes"}, {"dce"}, &printed});
  auto changed = p.Run(*m);
  ASSERT_TRUE(changed.ok()) << changed.status().message();
  EXPECT_FALSE(*changed);
  EXPECT_EQ(m->graph->num_nodes(), 2u);  // dce did not run: the dead Neg stays
  EXPECT_NE(printed.str().find("// ----- IR after pass 'fold-shapes' (unchanged)"),
            std::string::npos)
      << printed.str();
  EXPECT_EQ(printed.str().find("after pass 'bind-dims'"), std::string::npos);
  // Without the debug options dce removes it.
  PassPipeline plain = pipelines::BindShapes({});
  ASSERT_TRUE(plain.Run(*m).ok());
  EXPECT_EQ(m->graph->num_nodes(), 1u);
}

// A pass that breaks the IR is caught by the verifier, which names it.
class BreakTypes : public Pass {
 public:
  std::string_view name() const override { return "break-types"; }
  StatusOr<bool> Run(Model& m) override {
    m.graph->nodes()[0]->output(0)->set_type({DType::kFloat16, Shape{Dim(2)}});
    return true;
  }
};

TEST(PipelineTest, VerifierRunsAfterEveryPass) {
  auto m = LoadModelText(R"(<ir_version: 8, opset_import: ["" : 17]>
main (float[2] x) => (float[2] y) { y = Relu (x) })");
  ASSERT_TRUE(m.ok());
  PassPipeline p;
  p.Add(std::make_unique<BreakTypes>());
  auto r = p.Run(*m);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("after pass 'break-types' the IR does not verify"),
            std::string::npos)
      << r.status().message();
}

TEST(PipelineTest, BindDimsRejectsAContradiction) {
  // N is used as 4 by the Reshape; binding it to 5 contradicts the shapes.
  auto m = LoadModelText(R"(<ir_version: 8, opset_import: ["" : 17]>
main (float[N,3] x) => (float[N,3] y) <int64[2] s = {4, 3}> { y = Reshape (x, s) })");
  ASSERT_TRUE(m.ok()) << m.status().message();
  PassOptions options;
  options.dim_bindings["N"] = 5;
  auto p = BuildPipeline("bind-dims", options);
  auto r = p->Run(*m);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot reshape [5,3]"), std::string::npos)
      << r.status().message();
}

// ---- the training step's typed description ----

constexpr const char* kTinyModel = R"(<ir_version: 8, opset_import: ["" : 17]>
main (float[N,2] x) => (float[N,2] y)
<float[2,2] w = {1.0, 2.0, 3.0, 4.0}, float[2] b = {0.5, -0.5}>
{
  m = MatMul (x, w)
  y = Add (m, b)
})";

StatusOr<Model> TinyStep(const std::string& passes, const std::string& optimizer) {
  AMP_ASSIGN_OR_RETURN(Model m, LoadModelText(kTinyModel));
  PassOptions o;
  o.loss.kind = "mse";
  o.optimizer.kind = optimizer;
  o.optimizer.lr = 0.125f;
  o.optimizer.weight_decay = 0.5f;
  AMP_ASSIGN_OR_RETURN(PassPipeline p, BuildPipeline(passes, o));
  AMP_RETURN_IF_ERROR(p.Run(m).status());
  return m;
}

// Exporters store constants as float initializers; PyTorch never trains
// them, so neither does amp: dynamo's lifted val_N and _tensor_constantN,
// TorchScript's folded onnx::Op_N and /path/Constant_output_0. A scalar
// with a parameter's name (CLIP's logit_scale) is still trained.
TEST(AutodiffTest, ExporterConstantsAreNotParameters) {
  auto m = LoadModelText(R"(<ir_version: 8, opset_import: ["" : 17]>
main (float[N,2] x) => (float[N,2] y)
<float[2,2] w = {1.0, 2.0, 3.0, 4.0}, float a = {0.5}, float c = {2.0}, float d = {3.0},
 float e = {4.0}, float logit_scale = {1.5}>
{
  m = MatMul (x, w)
  p = Mul (m, a)
  q = Mul (p, c)
  r = Mul (q, d)
  s = Mul (r, e)
  y = Mul (s, logit_scale)
})");
  ASSERT_TRUE(m.ok()) << m.status().message();
  Graph& g = *m->graph;
  ASSERT_TRUE(g.RenameValue(g.FindValue("a"), "val_12").ok());
  ASSERT_TRUE(g.RenameValue(g.FindValue("c"), "onnx::Mul_7").ok());
  ASSERT_TRUE(g.RenameValue(g.FindValue("d"), "/block/Constant_output_0").ok());
  ASSERT_TRUE(g.RenameValue(g.FindValue("e"), "_tensor_constant0").ok());
  PassOptions o;
  o.loss.kind = "mse";
  auto p = BuildPipeline("attach-loss,autodiff", o);
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(p->Run(*m).ok());
  EXPECT_EQ(m->training.trainable, (std::vector<std::string>{"w", "logit_scale"}));
}

// --trainable keeps only the parameters it matches; --freeze drops those it
// matches; a regex that matches no float initializer is an error naming some.
TEST(AutodiffTest, TrainableAndFreezeSelectParametersAndMustMatch) {
  auto run = [](const std::string& freeze, const std::string& trainable) -> StatusOr<Model> {
    AMP_ASSIGN_OR_RETURN(Model m, LoadModelText(kTinyModel));
    PassOptions o;
    o.loss.kind = "mse";
    o.freeze = freeze;
    o.trainable = trainable;
    AMP_ASSIGN_OR_RETURN(PassPipeline p, BuildPipeline("attach-loss,autodiff", o));
    AMP_RETURN_IF_ERROR(p.Run(m).status());
    return m;
  };
  auto only_b = run("", "^b$");
  ASSERT_TRUE(only_b.ok()) << only_b.status().message();
  EXPECT_EQ(only_b->training.trainable, (std::vector<std::string>{"b"}));
  auto no_b = run("^b$", "");
  ASSERT_TRUE(no_b.ok()) << no_b.status().message();
  EXPECT_EQ(no_b->training.trainable, (std::vector<std::string>{"w"}));
  for (auto [freeze, trainable, flag] :
       {std::tuple<const char*, const char*, const char*>{"wieght", "", "--freeze"},
        {"", "bais", "--trainable"}}) {
    auto bad = run(freeze, trainable);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find(std::string(flag) + " '"), std::string::npos);
    EXPECT_NE(
        bad.status().message().find("matches no parameter (the model's float initializers: w, b)"),
        std::string::npos)
        << bad.status().message();
  }
}

// The forms the new gradient rules do not cover are refused with the node
// and the reason, not built wrong.
TEST(AutodiffTest, UnsupportedGradientFormsAreRefusedByName) {
  const std::pair<const char*, const char*> cases[] = {
      {R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,4] x) => (float[2,6] y)
<float[2,4] w = {1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0}, int64[4] p = {0, 1, 0, 1}>
{
  m = Mul (x, w)
  y = Pad <mode = "reflect"> (m, p)
})",
       "mode 'constant' (not 'reflect')"},
      {R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,4] x) => (float[2,3] y)
<float[2,4] w = {1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0}, float[4,3] v = {1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0,9.0,10.0,11.0,12.0}>
{
  m = Mul (x, w)
  y = Einsum <equation = "...j,jk"> (m, v)
})",
       "takes ellipses only with an explicit output"},
      {R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,4] x) => (float[2,4] y)
<float[2,4] w = {1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0}>
{
  m = Mul (x, w)
  y = Max (m, x, w)
})",
       "supports two inputs (this one has 3)"},
      {R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,4] x) => (float[2] y)
<float[2,4] w = {1.0,2.0,3.0,4.0,5.0,6.0,7.0,8.0}, int64[2,1] i = {1, 3}>
{
  m = Mul (x, w)
  y = GatherND <batch_dims = 1> (m, i)
})",
       "supports batch_dims 0"},
      {R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[1,1,2,2] x) => (float[1,1,4,4] y)
<float[1,1,2,2] w = {1.0,2.0,3.0,4.0}, float[4] sc = {1.0, 1.0, 2.0, 2.0}>
{
  m = Mul (x, w)
  y = Resize <mode = "linear"> (m, , sc)
})",
       "covers nearest upsampling by whole factors"},
      {R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[1,1,4] x) => (float[1,1,8] y)
<float[1,1,4] w = {1.0,2.0,3.0,4.0}, float[1,1,3] k = {1.0,1.0,1.0}>
{
  m = Mul (x, w)
  y = ConvTranspose <auto_pad = "SAME_UPPER", strides = [2]> (m, k)
})",
       "needs explicit pads"},
      {R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3] x) => (float[2] y)
<float[2,3] w = {1.0,2.0,3.0,4.0,5.0,6.0}>
{
  m = Mul (x, w)
  y = Einsum <equation = "ij,ii->i"> (m, w)
})",
       "repeated within one operand"},
  };
  for (const auto& [text, fragment] : cases) {
    auto m = LoadModelText(text);
    ASSERT_TRUE(m.ok()) << m.status().message();
    PassOptions o;
    o.loss.kind = "mse";
    auto p = BuildPipeline("attach-loss,autodiff", o);
    ASSERT_TRUE(p.ok());
    auto ran = p->Run(*m);
    ASSERT_FALSE(ran.ok()) << fragment;
    EXPECT_EQ(ran.status().code(), StatusCode::kUnimplemented) << ran.status().message();
    EXPECT_NE(ran.status().message().find(fragment), std::string::npos) << ran.status().message();
  }
}

TEST(TrainingDescriptionTest, TheOptimizerPassDescribesWhatItBuilt) {
  auto m = TinyStep("attach-loss,autodiff,loss-scaling,optimizer", "adamw");
  ASSERT_TRUE(m.ok()) << m.status().message();
  const TrainingInfo& t = m->training;
  EXPECT_EQ(t.optimizer.kind, OptimizerKind::kAdamW);
  EXPECT_EQ(t.optimizer.lr, "lr");
  EXPECT_FLOAT_EQ(static_cast<float>(t.optimizer.default_lr), 0.125f);
  EXPECT_FLOAT_EQ(t.optimizer.weight_decay, 0.5f);
  ASSERT_EQ(t.optimizer.params.size(), 2u);
  for (const auto& p : t.optimizer.params) {
    EXPECT_TRUE(m->graph->FindValue(p.exp_avg)->has_initializer()) << p.param;
    // Under loss scaling the update reads the unscaled gradient.
    EXPECT_EQ(p.grad, t.unscaled.at(p.param));
  }
  EXPECT_EQ(t.inverse_scale, "loss_scale.inverse");
  EXPECT_EQ(t.unscaled.size(), 2u);
}

TEST(TrainingDescriptionTest, FusionReadsTheDescriptionNotTheFormula) {
  auto m = TinyStep("attach-loss,autodiff,loss-scaling,optimizer", "adam");
  ASSERT_TRUE(m.ok()) << m.status().message();
  // An equivalent rewrite of the update's formula (an Identity between the
  // ratio and its consumer) would have stopped a pattern match.
  Graph& g = *m->graph;
  Value* ratio = g.FindValue("w.ratio");
  ASSERT_NE(ratio, nullptr);
  Node* id = g.AddNode("Identity", {ratio}, {"w.ratio_copy"});
  id->output(0)->set_type(ratio->type());
  for (const Use& u : std::vector<Use>(ratio->uses()))
    if (u.node != id) u.node->SetInput(u.index, id->output(0));
  ASSERT_TRUE(g.TopologicalSort().ok());
  auto fuse = BuildPipeline("fuse-optimizer,dce", {});
  ASSERT_TRUE(fuse.ok());
  auto changed = fuse->Run(*m);
  ASSERT_TRUE(changed.ok()) << changed.status().message();
  EXPECT_TRUE(*changed);
  int fused = 0;
  for (const Node* n : g.nodes()) {
    fused += n->op_type() == "FusedAdam";
    EXPECT_NE(n->op_type(), "Sqrt") << "the per-parameter update is still there";
  }
  EXPECT_EQ(fused, 1);
}

TEST(TrainingDescriptionTest, ADescriptionTheGraphContradictsIsAnError) {
  auto m = TinyStep("attach-loss,autodiff,optimizer", "adam");
  ASSERT_TRUE(m.ok()) << m.status().message();
  m->training.optimizer.params[0].exp_avg = "x";  // a graph input, not state
  FuseOptimizer fuse;
  auto r = fuse.Run(*m);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("names 'x' as state of"), std::string::npos)
      << r.status().message();
}

TEST(TrainingDescriptionTest, SurvivesExportAndImport) {
  auto m =
      TinyStep("attach-loss,autodiff,loss-scaling,optimizer,paint-precision,insert-casts", "sgd");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->training.half_copies.count("w"), 1u);  // MatMul's weight runs in half
  std::string path = ::testing::TempDir() + "amp_description_step.onnx";
  Status saved = SaveModelFile(*m, path);
  ASSERT_TRUE(saved.ok()) << saved.message();
  auto back = LoadModel(path, TrainingInfoMode::kStep);
  ASSERT_TRUE(back.ok()) << back.status().message();
  const TrainingInfo &a = m->training, &b = back->training;
  EXPECT_EQ(b.optimizer.kind, OptimizerKind::kSgd);
  EXPECT_EQ(b.optimizer.lr, a.optimizer.lr);
  EXPECT_EQ(b.optimizer.default_lr, static_cast<double>(0.125f));
  EXPECT_FLOAT_EQ(b.optimizer.weight_decay, 0.5f);
  ASSERT_EQ(b.optimizer.params.size(), a.optimizer.params.size());
  for (size_t i = 0; i < a.optimizer.params.size(); ++i) {
    EXPECT_EQ(b.optimizer.params[i].param, a.optimizer.params[i].param);
    EXPECT_EQ(b.optimizer.params[i].grad, a.optimizer.params[i].grad);
  }
  EXPECT_EQ(b.unscaled, a.unscaled);
  EXPECT_EQ(b.inverse_scale, a.inverse_scale);
  EXPECT_EQ(b.half_copies, a.half_copies);
  // Dynamic loss scaling's rule (what fuse-loss-scale reads).
  EXPECT_EQ(a.loss_scale_rule.growth_interval, 2000);
  EXPECT_EQ(b.loss_scale_rule.growth_interval, a.loss_scale_rule.growth_interval);
  EXPECT_EQ(b.loss_scale_rule.growth_factor, a.loss_scale_rule.growth_factor);
  EXPECT_EQ(b.loss_scale_rule.backoff_factor, a.loss_scale_rule.backoff_factor);
  EXPECT_EQ(b.loss_scale_rule.min_scale, a.loss_scale_rule.min_scale);
  EXPECT_EQ(b.loss_scale_rule.max_scale, a.loss_scale_rule.max_scale);
  // A description edited into one the step contradicts, or of the wrong
  // JSON types, is refused with its reason, never thrown.
  auto refused_with = [&](const std::function<void(nlohmann::json&)>& edit,
                          const std::string& reason) {
    onnx::ModelProto proto;
    std::ifstream in(path, std::ios::binary);
    ASSERT_TRUE(proto.ParseFromIstream(&in));
    for (auto& p : *proto.mutable_metadata_props())
      if (p.key() == "amp.training") {
        nlohmann::json j = nlohmann::json::parse(p.value());
        edit(j);
        p.set_value(j.dump());
      }
    std::string bad = ::testing::TempDir() + "amp_description_bad.onnx";
    std::ofstream out(bad, std::ios::binary);
    ASSERT_TRUE(proto.SerializeToOstream(&out));
    out.close();
    auto refused = LoadModel(bad, TrainingInfoMode::kStep);
    ASSERT_FALSE(refused.ok()) << reason;
    EXPECT_NE(refused.status().message().find(reason), std::string::npos)
        << refused.status().message();
    std::remove(bad.c_str());
  };
  refused_with([](nlohmann::json& j) { j["optimizer"]["nesterov"] = 1; },
               "'nesterov' is not a boolean");
  refused_with([](nlohmann::json& j) { j["optimizer"]["params"][0]["grad"] = "no_such_value"; },
               "names 'no_such_value', which the step does not");
  refused_with([](nlohmann::json& j) { j["loss_scale_rule"]["growth_interval"] = 0; },
               "has a loss_scale_rule out of range");
  refused_with([](nlohmann::json& j) { j["loss_scale_rule"]["backoff_factor"] = "half"; },
               "metadata 'amp.training' is malformed");
  // The report reads the same description.
  nlohmann::json r = BuildPrecisionReport(*back, ReportContext{"fp16", "O1", 0});
  ASSERT_TRUE(r.contains("training"));
  EXPECT_EQ(r["training"]["parameters"], 2);
  EXPECT_EQ(r["training"]["half_copies"], 1);
  EXPECT_EQ(r["training"]["half_copy_bytes"], 4 * 2);  // w: 2x2 values of 2 bytes
  EXPECT_EQ(r["training"]["optimizer"], "sgd");
  EXPECT_EQ(r["training"]["loss_scaling"], "dynamic");
  std::remove(path.c_str());
}

// A pass is found where its name says: pass "fold-casts" is class FoldCasts
// in passes/fold_casts.h.
TEST(PassesTest, EveryPassNameIsItsFileAndClassName) {
  for (const std::string& name : RegisteredPassNames()) {
    std::string file, cls;
    bool upper = true;
    for (char c : name) {
      file += c == '-' ? '_' : c;
      if (c == '-') {
        upper = true;
        continue;
      }
      cls += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
      upper = false;
    }
    std::ifstream header(std::string(AMP_SOURCE_DIR) + "/passes/" + file + ".h");
    ASSERT_TRUE(header.good()) << name << ": no passes/" << file << ".h";
    std::stringstream text;
    text << header.rdbuf();
    EXPECT_NE(text.str().find("class " + cls + " : public Pass"), std::string::npos)
        << name << ": passes/" << file << ".h has no class " << cls;
  }
}

}  // namespace
}  // namespace amp
