// The mutation API keeps producer/use links consistent, and the verifier
// catches what a broken pass would leave behind.
#include "compiler/ir.h"

#include <gtest/gtest.h>

#include "compiler/shape_inference.h"
#include "compiler/verifier.h"

namespace amp {
namespace {

TensorType F32(std::vector<int64_t> dims) { return {DType::kFloat32, ShapeFromDims(dims)}; }

// x -> Relu -> y -> Neg -> z (output)
Model Chain() {
  Model m;
  m.opsets.push_back({"", 17});
  Graph& g = *m.graph;
  Value* x = g.AddInput("x", F32({2, 3}));
  Node* relu = g.AddNode("Relu", {x}, {"y"});
  Node* neg = g.AddNode("Neg", {relu->output(0)}, {"z"});
  g.AddOutput(neg->output(0));
  AMP_CHECK(RunShapeInference(m).ok());
  return m;
}

TEST(IrTest, BuildsLinks) {
  Model m = Chain();
  Graph& g = *m.graph;
  Value* y = g.FindValue("y");
  ASSERT_NE(y, nullptr);
  EXPECT_EQ(y->producer()->op_type(), "Relu");
  ASSERT_EQ(y->uses().size(), 1u);
  EXPECT_EQ(y->uses()[0].node->op_type(), "Neg");
  EXPECT_EQ(g.FindValue("z")->type().ToString(), "float[2,3]");
  EXPECT_TRUE(VerifyModel(m).ok());
}

TEST(IrTest, ReplaceAllUsesAndErase) {
  Model m = Chain();
  Graph& g = *m.graph;
  Value* x = g.FindValue("x");
  Value* y = g.FindValue("y");
  Node* relu = y->producer();
  g.ReplaceAllUsesWith(y, x);
  EXPECT_TRUE(y->uses().empty());
  EXPECT_EQ(x->uses().size(), 2u);  // Relu and Neg
  g.EraseNode(relu);
  EXPECT_EQ(g.FindValue("y"), nullptr);
  EXPECT_EQ(x->uses().size(), 1u);
  EXPECT_EQ(g.num_nodes(), 1u);
  EXPECT_TRUE(VerifyModel(m).ok());
}

TEST(IrTest, ReplaceAllUsesRewritesGraphOutputs) {
  Model m = Chain();
  Graph& g = *m.graph;
  Value* y = g.FindValue("y");
  Value* z = g.FindValue("z");
  g.ReplaceAllUsesWith(z, y);
  EXPECT_EQ(g.outputs()[0], y);
  g.EraseNode(z->producer());
  EXPECT_TRUE(VerifyModel(m).ok());
}

TEST(IrTest, UniqueNames) {
  Model m = Chain();
  Graph& g = *m.graph;
  EXPECT_EQ(g.UniqueName("fresh"), "fresh");
  EXPECT_EQ(g.UniqueName("y"), "y_1");
  Node* n = g.AddNode("Relu", {g.FindValue("x")}, {"y"});
  EXPECT_NE(n->output(0)->name(), "y");
  EXPECT_EQ(g.FindValue(n->output(0)->name()), n->output(0));
  EXPECT_FALSE(g.CreateValue("x").ok());
}

TEST(IrTest, TopologicalSortOrdersAndFindsCycles) {
  Model m = Chain();
  Graph& g = *m.graph;
  Node* neg = g.FindValue("z")->producer();
  Node* relu = g.FindValue("y")->producer();
  g.MoveBefore(neg, relu);  // consumer first: not topological
  Status st = VerifyModel(m);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("before the node that defines it"), std::string::npos)
      << st.message();
  ASSERT_TRUE(g.TopologicalSort().ok());
  EXPECT_EQ(g.nodes()[0], relu);
  EXPECT_TRUE(VerifyModel(m).ok());

  relu->SetInput(0, g.FindValue("z"));  // Relu reads Neg's output: a cycle
  Status cyc = g.TopologicalSort();
  ASSERT_FALSE(cyc.ok());
  EXPECT_NE(cyc.message().find("cycle"), std::string::npos) << cyc.message();
}

TEST(IrTest, VerifierCatchesWrongTypes) {
  Model m = Chain();
  m.graph->FindValue("y")->set_type({DType::kFloat16, ShapeFromDims({2, 3})});
  Status st = VerifyModel(m);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("recorded as float16[2,3] but the op gives float[2,3]"),
            std::string::npos)
      << st.message();

  Model m2 = Chain();
  m2.graph->FindValue("z")->set_type(F32({2, 4}));
  EXPECT_FALSE(VerifyModel(m2).ok());
}

TEST(IrTest, ReplaceWithConstantKeepsTheValue) {
  Model m = Chain();
  Graph& g = *m.graph;
  Value* y = g.FindValue("y");
  g.ReplaceWithConstant(y->producer(),
                        Tensor::FromVector<float>(DType::kFloat32, {2, 3}, {1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(y->producer()->op_type(), "Constant");
  EXPECT_EQ(y->producer()->num_inputs(), 0u);
  EXPECT_TRUE(g.FindValue("x")->uses().empty());
  EXPECT_TRUE(VerifyModel(m).ok());
}

}  // namespace
}  // namespace amp
