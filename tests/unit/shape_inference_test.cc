// Shape inference errors name the node and the problem; the table covers the
// ops of the shipped models.
#include <gtest/gtest.h>

#include "compiler/loader.h"
#include "ops/op_def.h"

namespace amp {
namespace {

void ExpectError(const std::string& body, const std::string& fragment,
                 const std::string& inputs = "float[2,3] x, float[4,5] y") {
  std::string text = "<ir_version: 8, opset_import: [\"\" : 17]>\nmain (" + inputs +
                     ") => (float z) {\n" + body + "\n}";
  auto m = LoadModelText(text);
  ASSERT_FALSE(m.ok()) << text;
  EXPECT_NE(m.status().message().find(fragment), std::string::npos) << m.status().message();
}

TEST(ShapeInferenceTest, Errors) {
  ExpectError("z = MatMul (x, y)", "inner dims differ: [2,3] x [4,5]");
  ExpectError("z = Add (x, y)", "shapes cannot be broadcast: dim 2 against 4");
  ExpectError("z = Relu (x, y)", "has 2 inputs; Relu takes 1 to 1");
  ExpectError("z = Transpose <perm = [0, 0]> (x)", "perm is not a permutation");
  ExpectError("z = Softmax <axis = 2> (x)", "axis 2 is out of range for rank 2");
  ExpectError("z = Gemm (x, y)", "inner dims differ");
  ExpectError("z = Add (x, i)", "inputs must have one element type, but have float and int64",
              "float[2,3] x, int64[2,3] i");
  ExpectError("z = Exp (i)", "input 0 ('i') is int64, but Exp-13 takes float", "int64[2] i");
  ExpectError("z = Reshape (x, s)", "cannot reshape [2,3] (6 elements) to [4,2] (8 elements)",
              "float[2,3] x, int64[2] s = {4, 2}");
  ExpectError("z = Conv (x, w)", "input has 3 channels but the weight expects 4",
              "float[1,3,8,8] x, float[2,4,3,3] w");
  // Before opset 18 ReduceMean's axes are an attribute: an axes input was
  // inferred as a reduction over every axis while the kernel read the input
  // (and wrote past its output).
  ExpectError("z = ReduceMean (x, a)", "takes its axes as an attribute before opset 18",
              "float[2,3] x, int64[1] a = {1}");
}

TEST(ShapeInferenceTest, UnknownOpListsWhatToDo) {
  auto m = LoadModelText(R"(<ir_version: 8, opset_import: ["" : 17, "com.microsoft" : 1]>
main (float[2] x) => (float[2] y) { y = com.microsoft.FusedGelu (x) })");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("op 'FusedGelu' of domain 'com.microsoft' is not supported"),
            std::string::npos)
      << m.status().message();
}

TEST(ShapeInferenceTest, ConvAndPoolArithmetic) {
  auto m = LoadModelText(R"(<ir_version: 8, opset_import: ["" : 17]>
main (float[2,3,17,17] x, float[8,1,3,3] w) => (float[2,8,8,8] a, float[2,3,8,8] b, float[2,3,9,9] c, float[2,1,34,34] d) {
  a = Conv <group = 3, strides = [2, 2], pads = [1, 1, 1, 1], dilations = [2, 2]> (x, w)
  b = MaxPool <kernel_shape = [3, 3], strides = [2, 2], ceil_mode = 1> (x)
  c = AveragePool <kernel_shape = [2, 2], auto_pad = "SAME_UPPER", strides = [2, 2]> (x)
  d = ConvTranspose <strides = [2, 2], pads = [1, 1, 1, 1], output_padding = [1, 1]> (x, w)
})");
  // Conv group=3 needs weight channels 1 * 3 = 3 input channels. Output:
  // floor((17 + 2 - 2*2 - 1) / 2) + 1 = 8. MaxPool ceil: ceil((17 - 3) / 2) + 1 = 8.
  // SAME_UPPER: ceil(17 / 2) = 9. ConvTranspose: 2*16 + 1 + 3 - 2 = 34, channels 1*1.
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->graph->FindValue("a")->type().ToString(), "float[2,8,8,8]");
  EXPECT_EQ(m->graph->FindValue("b")->type().ToString(), "float[2,3,8,8]");
  EXPECT_EQ(m->graph->FindValue("c")->type().ToString(), "float[2,3,9,9]");
  EXPECT_EQ(m->graph->FindValue("d")->type().ToString(), "float[2,1,34,34]");
}

TEST(ShapeInferenceTest, EinsumAndLosses) {
  auto m = LoadModelText(R"(<ir_version: 8, opset_import: ["" : 17]>
main (float[B,4,8,16] q, float[B,4,8,16] k, float[B,10] logits, int64[B] labels) => (float[B,4,8,8] s, float loss, float[B] l2) {
  s = Einsum <equation = "bhqd,bhkd->bhqk"> (q, k)
  loss = SoftmaxCrossEntropyLoss (logits, labels)
  l2 = SoftmaxCrossEntropyLoss <reduction = "none"> (logits, labels)
})");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->graph->FindValue("s")->type().ToString(), "float[B,4,8,8]");
  EXPECT_EQ(m->graph->FindValue("loss")->type().ToString(), "float[]");
  EXPECT_EQ(m->graph->FindValue("l2")->type().ToString(), "float[B]");
}

TEST(ShapeInferenceTest, SupportedOpsCoverTheTrainingSet) {
  auto ops = SupportedOps();
  for (const char* op : {"MatMul",
                         "Gemm",
                         "Conv",
                         "MaxPool",
                         "AveragePool",
                         "GlobalAveragePool",
                         "BatchNormalization",
                         "LayerNormalization",
                         "Relu",
                         "Gelu",
                         "Erf",
                         "Sigmoid",
                         "Tanh",
                         "LeakyRelu",
                         "Softmax",
                         "LogSoftmax",
                         "Dropout",
                         "SoftmaxCrossEntropyLoss",
                         "NegativeLogLikelihoodLoss",
                         "Add",
                         "Sub",
                         "Mul",
                         "Div",
                         "Pow",
                         "Sqrt",
                         "Reciprocal",
                         "Exp",
                         "Log",
                         "Neg",
                         "ReduceMean",
                         "ReduceSum",
                         "Reshape",
                         "Flatten",
                         "Transpose",
                         "Squeeze",
                         "Unsqueeze",
                         "Concat",
                         "Split",
                         "Slice",
                         "Gather",
                         "Expand",
                         "Where",
                         "Cast",
                         "Identity"})
    EXPECT_TRUE(std::find(ops.begin(), ops.end(), op) != ops.end()) << op;
}

}  // namespace
}  // namespace amp
