#include "passes/op_classes.h"

#include <algorithm>
#include <map>

namespace amp {
namespace {

struct Entry {
  OpClass op_class;
  const char* reason;
};

const std::map<std::string, Entry>& Table() {
  static const std::map<std::string, Entry> table = {
      // ---- half: matrix engines, FP32 accumulation ----
      {"MatMul", {OpClass::kHalf, "GEMM on tensor cores, FP32 accumulation"}},
      {"Gemm", {OpClass::kHalf, "GEMM on tensor cores, FP32 accumulation"}},
      {"Conv", {OpClass::kHalf, "convolution on tensor cores, FP32 accumulation"}},
      {"ConvTranspose", {OpClass::kHalf, "convolution on tensor cores, FP32 accumulation"}},
      {"Einsum", {OpClass::kHalf, "contraction on tensor cores, FP32 accumulation"}},
      {"RNN", {OpClass::kHalf, "recurrent cell made of GEMMs"}},
      {"GRU", {OpClass::kHalf, "recurrent cell made of GEMMs"}},
      {"LSTM", {OpClass::kHalf, "recurrent cell made of GEMMs"}},
      // ---- fp32: range or precision would suffer in half ----
      {"Softmax",
       {OpClass::kFp32, "exp overflows and the normalizing sum loses precision in half"}},
      {"LogSoftmax",
       {OpClass::kFp32, "exp overflows and the normalizing sum loses precision in half"}},
      {"LayerNormalization", {OpClass::kFp32, "mean and variance need FP32"}},
      {"GroupNormalization", {OpClass::kFp32, "mean and variance need FP32"}},
      {"InstanceNormalization", {OpClass::kFp32, "mean and variance need FP32"}},
      {"ReduceSum", {OpClass::kFp32, "long sums overflow or lose precision in half"}},
      {"ReduceMean", {OpClass::kFp32, "long sums overflow or lose precision in half"}},
      {"ReduceProd", {OpClass::kFp32, "products overflow or underflow in half"}},
      {"ReduceL1", {OpClass::kFp32, "norms are long sums"}},
      {"ReduceL2", {OpClass::kFp32, "norms are long sums of squares"}},
      {"ReduceSumSquare", {OpClass::kFp32, "sums of squares overflow in half"}},
      {"ReduceLogSum", {OpClass::kFp32, "log of a long sum"}},
      {"ReduceLogSumExp", {OpClass::kFp32, "exp overflows in half"}},
      {"CumSum", {OpClass::kFp32, "running sums lose precision in half"}},
      {"Exp", {OpClass::kFp32, "exp overflows half above 11"}},
      {"Log", {OpClass::kFp32, "log of small half values underflows"}},
      {"Pow", {OpClass::kFp32, "powers overflow or underflow in half"}},
      {"Sqrt", {OpClass::kFp32, "feeds normalizations; small inputs underflow in half"}},
      {"Reciprocal", {OpClass::kFp32, "1/x overflows half for |x| < 2^-16"}},
      {"Softplus", {OpClass::kFp32, "exp inside overflows in half"}},
      {"SoftmaxCrossEntropyLoss", {OpClass::kFp32, "losses are computed in FP32"}},
      {"NegativeLogLikelihoodLoss", {OpClass::kFp32, "losses are computed in FP32"}},
      {"TopK", {OpClass::kFp32, "rounding to half would change which elements are largest"}},
      {"Resize", {OpClass::kFp32, "coordinate arithmetic in FP32"}},
      {"Range", {OpClass::kFp32, "index arithmetic"}},
      // ---- infer: half only between half producers and consumers ----
      {"Add", {OpClass::kInfer, "elementwise: half between half ops"}},
      {"Sub", {OpClass::kInfer, "elementwise: half between half ops"}},
      {"Mul", {OpClass::kInfer, "elementwise: half between half ops"}},
      {"Div", {OpClass::kInfer, "elementwise: half between half ops"}},
      {"Sum", {OpClass::kInfer, "elementwise: half between half ops"}},
      {"Mean", {OpClass::kInfer, "elementwise: half between half ops"}},
      {"Neg", {OpClass::kInfer, "elementwise: half between half ops"}},
      {"Abs", {OpClass::kInfer, "elementwise: half between half ops"}},
      {"Sign", {OpClass::kInfer, "elementwise: half between half ops"}},
      {"Clip", {OpClass::kInfer, "elementwise: half between half ops"}},
      {"PRelu", {OpClass::kInfer, "elementwise: half between half ops"}},
      {"AveragePool", {OpClass::kInfer, "small windowed mean: half between half ops"}},
      {"GlobalAveragePool", {OpClass::kInfer, "windowed mean: half between half ops"}},
      {"BatchNormalization", {OpClass::kInfer, "half X and Y between half ops; FP32 statistics"}},
      {"Sigmoid", {OpClass::kInfer, "bounded activation: half between half ops"}},
      {"Tanh", {OpClass::kInfer, "bounded activation: half between half ops"}},
      {"Gelu", {OpClass::kInfer, "activation: half between half ops"}},
      {"Erf", {OpClass::kInfer, "bounded activation: half between half ops"}},
      {"LeakyRelu", {OpClass::kInfer, "activation: half between half ops"}},
      {"Elu", {OpClass::kInfer, "activation: half between half ops"}},
      {"Selu", {OpClass::kInfer, "activation: half between half ops"}},
      {"HardSigmoid", {OpClass::kInfer, "activation: half between half ops"}},
      {"HardSwish", {OpClass::kInfer, "activation: half between half ops"}},
      {"Mish", {OpClass::kInfer, "activation: half between half ops"}},
      {"Softsign", {OpClass::kInfer, "activation: half between half ops"}},
      {"Sin", {OpClass::kInfer, "bounded: half between half ops"}},
      {"Cos", {OpClass::kInfer, "bounded: half between half ops"}},
      {"Floor", {OpClass::kInfer, "elementwise: half between half ops"}},
      {"Ceil", {OpClass::kInfer, "elementwise: half between half ops"}},
      {"Round", {OpClass::kInfer, "elementwise: half between half ops"}},
      // ---- clear: exact or data movement; takes its neighbours' precision ----
      {"Reshape", {OpClass::kClear, "data movement"}},
      {"Transpose", {OpClass::kClear, "data movement"}},
      {"Squeeze", {OpClass::kClear, "data movement"}},
      {"Unsqueeze", {OpClass::kClear, "data movement"}},
      {"Flatten", {OpClass::kClear, "data movement"}},
      {"Concat", {OpClass::kClear, "data movement"}},
      {"Split", {OpClass::kClear, "data movement"}},
      {"Slice", {OpClass::kClear, "data movement"}},
      {"Gather", {OpClass::kClear, "data movement"}},
      {"GatherElements", {OpClass::kClear, "data movement"}},
      {"ScatterElements", {OpClass::kFp32, "scatter-add accumulates gradients: FP32"}},
      {"ScatterND", {OpClass::kFp32, "scatter-add accumulates gradients: FP32"}},
      {"Pad", {OpClass::kClear, "data movement"}},
      {"Expand", {OpClass::kClear, "data movement"}},
      {"Tile", {OpClass::kClear, "data movement"}},
      {"Trilu", {OpClass::kClear, "data movement"}},
      {"Identity", {OpClass::kClear, "data movement"}},
      {"Dropout", {OpClass::kClear, "masks and scales by a constant"}},
      {"Relu", {OpClass::kClear, "exact in any precision"}},
      {"MaxPool", {OpClass::kClear, "exact in any precision"}},
      {"GlobalMaxPool", {OpClass::kClear, "exact in any precision"}},
      {"Max", {OpClass::kClear, "exact in any precision"}},
      {"Min", {OpClass::kClear, "exact in any precision"}},
      {"ReduceMax", {OpClass::kClear, "exact in any precision"}},
      {"ReduceMin", {OpClass::kClear, "exact in any precision"}},
      {"ArgMax", {OpClass::kClear, "reads any float type"}},
      {"ArgMin", {OpClass::kClear, "reads any float type"}},
      {"Where", {OpClass::kClear, "selects between its inputs"}},
      {"Equal", {OpClass::kClear, "compares its inputs"}},
      {"Less", {OpClass::kClear, "compares its inputs"}},
      {"LessOrEqual", {OpClass::kClear, "compares its inputs"}},
      {"Greater", {OpClass::kClear, "compares its inputs"}},
      {"GreaterOrEqual", {OpClass::kClear, "compares its inputs"}},
      {"IsNaN", {OpClass::kClear, "reads any float type"}},
      {"IsInf", {OpClass::kClear, "reads any float type"}},
      // ---- not painted ----
      {"Shape", {OpClass::kNone, "reads only the shape"}},
      {"Size", {OpClass::kNone, "reads only the shape"}},
      {"Cast", {OpClass::kNone, "the user's own conversion"}},
      {"CastLike", {OpClass::kNone, "the user's own conversion"}},
      {"Constant", {OpClass::kNone, "constants are converted at compile time"}},
      {"ConstantOfShape", {OpClass::kNone, "a constant"}},
  };
  return table;
}

}  // namespace

OpClassInfo ClassifyOp(const std::string& op_type, DType half_type) {
  if (half_type == DType::kBFloat16 && (op_type == "ReduceSum" || op_type == "ReduceMean"))
    return {OpClass::kInfer, "bfloat16 keeps FP32's exponent range, so sums may run in half"};
  auto it = Table().find(op_type);
  if (it == Table().end()) return {OpClass::kUnlisted, "not in any list: kept in FP32"};
  return {it->second.op_class, it->second.reason};
}

const char* OpClassName(OpClass c) {
  switch (c) {
    case OpClass::kHalf:
      return "half";
    case OpClass::kFp32:
      return "fp32";
    case OpClass::kInfer:
      return "infer";
    case OpClass::kClear:
      return "clear";
    case OpClass::kNone:
      return "none";
    case OpClass::kUnlisted:
      return "unlisted";
  }
  return "?";
}

std::vector<int> ShapeLikeInputs(const std::string& op) {
  static const std::map<std::string, std::vector<int>> slots = {{"Reshape", {1}},
                                                                {"Expand", {1}},
                                                                {"Tile", {1}},
                                                                {"Slice", {1, 2, 3, 4}},
                                                                {"Range", {0, 1, 2}},
                                                                {"ConstantOfShape", {0}},
                                                                {"Gather", {1}},
                                                                {"GatherElements", {1}},
                                                                {"ScatterElements", {1}},
                                                                {"Squeeze", {1}},
                                                                {"Unsqueeze", {1}},
                                                                {"Split", {1}},
                                                                {"TopK", {1}},
                                                                {"OneHot", {0, 1}},
                                                                {"Pad", {1, 3}},
                                                                {"Resize", {1, 2, 3}},
                                                                {"ReduceSum", {1}},
                                                                {"ReduceMean", {1}},
                                                                {"ReduceMax", {1}},
                                                                {"ReduceMin", {1}},
                                                                {"ReduceProd", {1}},
                                                                {"ReduceL1", {1}},
                                                                {"ReduceL2", {1}},
                                                                {"ReduceSumSquare", {1}},
                                                                {"ReduceLogSum", {1}},
                                                                {"ReduceLogSumExp", {1}},
                                                                {"CumSum", {1}},
                                                                {"Trilu", {1}},
                                                                {"Dropout", {1, 2}},
                                                                {"SoftmaxCrossEntropyLoss", {1}},
                                                                {"NegativeLogLikelihoodLoss", {1}}};
  auto it = slots.find(op);
  return it == slots.end() ? std::vector<int>{} : it->second;
}

int FirstHalfOpset(const std::string& op_type, DType half_type) {
  struct Support {
    const char* op;
    int fp16;
    int bf16;
  };
  static const Support kSupport[] = {
#include "passes/half_support.inc"
  };
  for (const Support& s : kSupport)
    if (op_type == s.op) return half_type == DType::kBFloat16 ? s.bf16 : s.fp16;
  return 0;
}

bool IsShapeLikeInput(const std::string& op_type, int slot) {
  auto slots = ShapeLikeInputs(op_type);
  return std::find(slots.begin(), slots.end(), slot) != slots.end();
}

bool KeepsFp32Input(const std::string& op_type, int slot) {
  return op_type == "BatchNormalization" && slot >= 1;
}

}  // namespace amp
