// Every pass is idempotent (a second run changes nothing, as ONNX Runtime's
// transformer tests require), keeps the IR verifying, and the pipeline names
// the pass that fails.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "compiler/loader.h"
#include "compiler/text.h"
#include "compiler/verifier.h"
#include "passes/pipelines.h"
#include "passes/registry.h"

namespace amp {
namespace {

struct Case {
  std::string model;
  std::string file;
};

class PassesOnModels : public ::testing::TestWithParam<Case> {};

TEST_P(PassesOnModels, EachPassIsIdempotent) {
  PassOptions options;
  options.dim_bindings["batch"] = 4;
  // Passes that need others before them (the training step is built in order).
  const std::map<std::string, std::string> prerequisites = {
      {"autodiff", "attach-loss"},
      {"loss-scaling", "attach-loss,autodiff"},
      {"optimizer", "attach-loss,autodiff,loss-scaling"},
  };
  for (const std::string& pass : RegisteredPassNames()) {
    auto it = prerequisites.find(pass);
    std::string first_run = it == prerequisites.end() ? pass : it->second + "," + pass;
    auto m = LoadModel(std::string(AMP_SOURCE_DIR) + "/models/" + GetParam().model + "/" +
                       GetParam().file);
    ASSERT_TRUE(m.ok()) << m.status().message();
    auto first = BuildPipeline(first_run, options);
    ASSERT_TRUE(first.ok());
    auto changed = first->Run(*m);
    ASSERT_TRUE(changed.ok()) << pass << ": " << changed.status().message();
    std::string after_first = PrintModel(*m);
    auto second = BuildPipeline(pass, options);
    auto changed_again = second->Run(*m);
    ASSERT_TRUE(changed_again.ok()) << changed_again.status().message();
    EXPECT_FALSE(*changed_again) << pass << " changed the model on its second run";
    EXPECT_EQ(PrintModel(*m), after_first) << pass;
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
  EXPECT_EQ(pipelines::Training(t).Describe(), "attach-loss,autodiff,optimizer,dce");
  t.loss_scale = LossScaleOptions{};
  EXPECT_EQ(pipelines::Training(t).Describe(), "attach-loss,autodiff,loss-scaling,optimizer,dce");
  t.gradients_only = true;
  EXPECT_EQ(pipelines::Training(t).Describe(), "attach-loss,autodiff,dce");
  EXPECT_EQ(pipelines::Specialize({{{"N", 2}}, false}).Describe(), "bind-dims,fold-shapes,dce");
  EXPECT_EQ(pipelines::Specialize({{}, true}).Describe(),
            "fuse-unscale,fuse-optimizer,bind-dims,fold-shapes,dce");
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

}  // namespace
}  // namespace amp
