#include "passes/paint_precision.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "passes/op_classes.h"

namespace amp {

bool IsBatchTransposeIntoMatMul(const Node& n, const Value* read) {
  if (n.op_type() != "Transpose" || !n.domain().empty() || n.num_inputs() != 1 || !n.input(0))
    return false;
  std::vector<int64_t> perm = n.GetInts("perm");
  if (perm.empty()) {  // the default reverses the dims
    const auto& shape = n.input(0)->type().shape;
    if (!shape) return false;
    for (size_t i = shape->size(); i-- > 0;) perm.push_back(static_cast<int64_t>(i));
  }
  bool moves_batch_axis = false;
  for (size_t i = 0; i + 2 < perm.size(); ++i)
    moves_batch_axis |= perm[i] != static_cast<int64_t>(i);
  if (!moves_batch_axis) return false;
  for (const Use& u : (read ? read : n.output(0))->uses())
    if (u.node->op_type() == "MatMul" && u.node->domain().empty()) return true;
  return false;
}
namespace {

enum class Color { kUnset, kHalf, kFp32 };

class Painter {
 public:
  Painter(Model& model, const PrecisionPolicy& policy) : model_(model), policy_(policy) {}

  bool Run() {
    FindShapeComputations();
    CollectCandidates();
    Seed();
    if (policy_.level == OptLevel::kO1) {
      SpreadFp32Upstream();
      KeepBatchTransposesIntoMatMulFp32();
      Resolve();
      RevertInferWithoutHalfConsumers();
    } else {
      KeepBatchTransposesIntoMatMulFp32();
    }
    bool changed = false;
    for (Node* n : candidates_) {
      Color c = color_[n];
      if (c == Color::kUnset) {
        c = Color::kFp32;
        rule_[n] = info_[n].op_class == OpClass::kInfer ? "infer: not between half ops"
                                                        : "clear: next to FP32 data";
      }
      DType compute = c == Color::kHalf ? policy_.half_type : DType::kFloat32;
      changed |= n->precision().compute != compute || n->precision().rule != rule_[n];
      n->set_precision(compute, rule_[n]);
    }
    return changed;
  }

 private:
  // Float32 data inputs of a node: what a precision change would convert.
  std::vector<Value*> FloatDataInputs(const Node* n) const {
    std::vector<Value*> out;
    for (size_t i = 0; i < n->num_inputs(); ++i) {
      Value* v = n->input(i);
      if (!v || v->dtype() != DType::kFloat32 ||
          IsShapeLikeInput(n->op_type(), static_cast<int>(i)))
        continue;
      if (KeepsFp32Input(n->op_type(), static_cast<int>(i))) continue;
      out.push_back(v);
    }
    return out;
  }

  // Shape computations: values computed only from shapes and constants, and
  // values that only flow into shape-like inputs.
  void FindShapeComputations() {
    const Graph& g = *model_.graph;
    std::vector<Node*> nodes = g.nodes();
    for (Node* n : nodes) {
      const std::string& op = n->op_type();
      bool from_shapes =
          op == "Shape" || op == "Size" || op == "Constant" || op == "ConstantOfShape";
      if (!from_shapes && n->num_inputs() > 0) {
        from_shapes = true;
        for (const Value* in : n->inputs()) {
          if (!in) continue;
          bool static_in =
              static_values_.count(in) || (in->has_initializer() && !IsFloat(in->dtype()));
          from_shapes &= static_in;
        }
      }
      if (from_shapes)
        for (const Value* out : n->outputs()) static_values_.insert(out);
    }
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
      Node* n = *it;
      bool all_shape_only = n->num_outputs() > 0;
      for (const Value* out : n->outputs()) all_shape_only &= ShapeOnly(out);
      if (all_shape_only) shape_nodes_.insert(n);
    }
  }

  bool ShapeOnly(const Value* v) const {
    if (v->is_graph_output() || v->uses().empty()) return false;
    for (const Use& u : v->uses())
      if (!IsShapeLikeInput(u.node->op_type(), u.index) && !shape_nodes_.count(u.node))
        return false;
    return true;
  }

  void CollectCandidates() {
    for (Node* n : model_.graph->nodes()) {
      if (!n->domain().empty()) continue;
      OpClassInfo info = ClassifyOp(n->op_type(), policy_.half_type);
      // A node decided by an earlier run keeps its decision (the pass is
      // idempotent) and still informs its neighbours.
      if (const PrecisionDecision& p = n->precision(); p.decided()) {
        candidates_.push_back(n);
        info_[n] = info;
        Set(n, p.compute == DType::kFloat32 ? Color::kFp32 : Color::kHalf, p.rule);
        fixed_.insert(n);
        continue;
      }
      if (info.op_class == OpClass::kNone) continue;
      if (shape_nodes_.count(n)) continue;
      bool all_static = n->num_outputs() > 0;
      for (const Value* out : n->outputs()) all_static &= static_values_.count(out) > 0;
      if (all_static) continue;  // a constant computation (fold-shapes folds it)
      bool float_data = !FloatDataInputs(n).empty();
      for (const Value* out : n->outputs()) float_data |= out->dtype() == DType::kFloat32;
      if (!float_data) continue;
      candidates_.push_back(n);
      info_[n] = info;
      color_[n] = Color::kUnset;
    }
  }

  // Why a node has its colour, where a later step asks (the rule text is
  // for the report only and is never compared).
  enum class Why { kOther, kOverride, kInferHalfInputs };

  void Set(Node* n, Color c, std::string rule, Why why = Why::kOther) {
    color_[n] = c;
    rule_[n] = std::move(rule);
    why_[n] = why;
  }

  void Seed() {
    for (Node* n : candidates_) {
      if (fixed_.count(n)) continue;
      const OpClassInfo& info = info_[n];
      const std::string& op = n->op_type();
      std::vector<std::string> outputs;
      for (const Value* v : n->outputs()) outputs.push_back(v->name());
      if (policy_.MatchesFp32Node(n->name(), outputs)) {
        Set(n, Color::kFp32,
            StrCat("override: --fp32-nodes matches '", n->name().empty() ? outputs[0] : n->name(),
                   "'"),
            Why::kOverride);
      } else if (policy_.fp32_ops.count(op)) {
        Set(n, Color::kFp32, StrCat("override: --fp32-ops ", op), Why::kOverride);
      } else if (int first = FirstHalfOpset(op, policy_.half_type);
                 first == 0 || first > model_.OpsetVersion("")) {
        Set(n, Color::kFp32,
            first == 0
                ? StrCat("ONNX's ", op, " does not accept ", DTypeName(policy_.half_type))
                : StrCat("ONNX's ", op, " accepts ", DTypeName(policy_.half_type), " from opset ",
                         first, "; the model has opset ", model_.OpsetVersion(""),
                         " (export with opset ", first, " to run it in half)"));
      } else if (policy_.half_ops.count(op)) {
        Set(n, Color::kHalf, StrCat("override: --half-ops ", op), Why::kOverride);
      } else if (op == "BatchNormalization" && policy_.keep_batchnorm_fp32) {
        Set(n, Color::kFp32, "override: --keep-batchnorm-fp32", Why::kOverride);
      } else if (op == "BatchNormalization" && model_.OpsetVersion("") < 15) {
        Set(n, Color::kFp32, "BatchNormalization before opset 15 needs one type for all inputs");
      } else if (policy_.level == OptLevel::kO3) {
        Set(n, Color::kHalf, "O3: pure half");
      } else if (info.op_class == OpClass::kHalf) {
        Set(n, Color::kHalf, StrCat("half list: ", info.reason));
      } else if (info.op_class == OpClass::kFp32) {
        Set(n, Color::kFp32, StrCat("fp32 list: ", info.reason));
      } else if (info.op_class == OpClass::kUnlisted) {
        Set(n, Color::kFp32, info.reason);
      } else if (const Value* param =
                     info.op_class == OpClass::kInfer && policy_.level == OptLevel::kO1
                         ? Fp32ParameterInput(n)
                         : nullptr) {
        // autocast runs an op off its lists in the widest input type: with
        // an FP32 parameter (a layer scale, a PReLU slope), FP32, and the
        // parameter is never rounded to half (a 1e-6 layer scale is
        // subnormal in fp16).
        Set(n, Color::kFp32,
            StrCat("infer: reads the FP32 parameter '", param->name(),
                   "' (autocast: the widest input type)"));
      } else if (policy_.level == OptLevel::kO2) {
        Set(n, Color::kHalf,
            StrCat("O2: half unless in the fp32 list (", OpClassName(info.op_class), ")"));
      }
    }
  }

  // A half Transpose that moves a batch axis (perm[i] != i for some i < rank-2)
  // and feeds a MatMul makes onnxruntime 1.32 crash at ORT_ENABLE_ALL: its CPU
  // provider wraps the MatMul in Casts to FP32, MatmulTransposeFusion then
  // swaps that Cast with the Transpose to fold a batch transpose into
  // FusedMatMul and leaves a broken graph that NchwcTransformer segfaults on
  // (docs/ONNXRUNTIME.md, tests/data/ort_enable_all_crash.onnx). Such a
  // Transpose stays FP32 and the Cast goes after it: the same values (a
  // Transpose only moves data), and no extra Cast when its input is FP32.
  // Overrides are respected; an earlier run's decision is kept.
  void KeepBatchTransposesIntoMatMulFp32() {
    for (Node* n : candidates_) {
      if (fixed_.count(n) || why_[n] == Why::kOverride || !IsBatchTransposeIntoMatMul(*n)) continue;
      Set(n, Color::kFp32,
          "fp32: a batch-axis Transpose into MatMul (onnxruntime workaround, "
          "docs/ONNXRUNTIME.md)");
    }
  }

  // Candidate nodes that read `n`'s outputs; `graph_output` tells whether an
  // output is also a graph output.
  std::vector<Node*> Consumers(const Node* n, bool* graph_output = nullptr) const {
    std::vector<Node*> out;
    if (graph_output) *graph_output = false;
    for (const Value* v : n->outputs()) {
      if (graph_output && v->is_graph_output()) *graph_output = true;
      for (const Use& u : v->uses())
        if (color_.count(u.node) && !IsShapeLikeInput(u.node->op_type(), u.index))
          out.push_back(u.node);
    }
    return out;
  }

  // A float32 parameter among n's float data inputs (what PyTorch trains:
  // the step's trainable list, or for a forward model every float
  // initializer that is no exporter constant), except a GEMM's bias: the
  // Add after a MatMul or Gemm is the Linear autocast runs in half.
  const Value* Fp32ParameterInput(const Node* n) const {
    const TrainingInfo& t = model_.training;
    for (const Value* v : FloatDataInputs(n)) {
      if (!v->has_initializer() || v->dtype() != DType::kFloat32) continue;
      bool param =
          t.active()
              ? std::find(t.trainable.begin(), t.trainable.end(), v->name()) != t.trainable.end()
              : !IsExporterConstantName(v->name()) && v->initializer()->num_elements() > 1;
      if (!param) continue;
      if (n->op_type() == "Add" && n->num_inputs() == 2 && v->initializer()->dims().size() <= 1) {
        const Value* other = n->input(0) == v ? n->input(1) : n->input(0);
        const Node* p = other ? other->producer() : nullptr;
        if (p && (p->domain().empty() || p->domain() == "ai.onnx") &&
            (p->op_type() == "MatMul" || p->op_type() == "Gemm"))
          continue;  // a bias
      }
      return v;
    }
    return nullptr;
  }

  bool Painted(const Node* n, Color c) const {
    auto it = color_.find(const_cast<Node*>(n));
    return it != color_.end() && it->second == c;
  }

  bool IsPaintable(const Node* n) const {
    OpClass c = info_.at(const_cast<Node*>(n)).op_class;
    return (c == OpClass::kInfer || c == OpClass::kClear) && Painted(n, Color::kUnset);
  }

  void SpreadFp32Upstream() {
    std::vector<Node*> work;
    for (Node* n : candidates_)
      if (color_[n] == Color::kFp32) work.push_back(n);
    while (!work.empty()) {
      Node* n = work.back();
      work.pop_back();
      for (Value* v : FloatDataInputs(n)) {
        Node* p = v->producer();
        if (!p || !color_.count(p) || !IsPaintable(p)) continue;
        bool graph_output = false;
        auto consumers = Consumers(p, &graph_output);
        bool all_fp32 = !consumers.empty();
        for (Node* c : consumers) all_fp32 &= Painted(c, Color::kFp32);
        if (!all_fp32) continue;
        Set(p, Color::kFp32, StrCat("fp32: feeds only FP32 ops (", n->op_type(), ")"));
        work.push_back(p);
      }
    }
  }

  // A value a half node can read for the price of at most one conversion per
  // step: a half node's output, a parameter, or a constant.
  bool HalfAble(const Value* v) const {
    if (v->has_initializer() || static_values_.count(v) || IsHalf(v->dtype())) return true;
    return v->producer() && Painted(v->producer(), Color::kHalf);
  }
  bool FromHalfNode(const Value* v) const {
    return v->producer() && Painted(v->producer(), Color::kHalf);
  }

  void Resolve() {
    bool changed = true;
    while (changed) {
      changed = false;
      for (Node* n : candidates_) {
        if (!IsPaintable(n)) continue;
        auto inputs = FloatDataInputs(n);
        bool all_ok = !inputs.empty(), any_half = false;
        for (const Value* v : inputs) {
          all_ok &= HalfAble(v);
          any_half |= FromHalfNode(v);
        }
        if (all_ok && any_half) {
          bool infer = info_[n].op_class == OpClass::kInfer;
          Set(n, Color::kHalf,
              infer ? "infer: its inputs are half" : "clear: follows its half input",
              infer ? Why::kInferHalfInputs : Why::kOther);
          changed = true;
        }
      }
      if (changed) continue;
      for (Node* n : candidates_) {
        if (!IsPaintable(n) || info_[n].op_class != OpClass::kClear) continue;
        bool graph_output = false;
        auto consumers = Consumers(n, &graph_output);
        bool all_half = !consumers.empty() && !graph_output;
        for (Node* c : consumers) all_half &= Painted(c, Color::kHalf);
        if (all_half) {
          Set(n, Color::kHalf, "clear: follows its half consumers");
          changed = true;
        }
      }
    }
  }

  // An infer op with half inputs but no half consumer goes back to FP32,
  // unless two or more of its inputs come from half ops: then one Cast back
  // after it is cheaper than a Cast on each input.
  void RevertInferWithoutHalfConsumers() {
    bool changed = true;
    while (changed) {
      changed = false;
      for (Node* n : candidates_) {
        if (info_[n].op_class != OpClass::kInfer || why_[n] != Why::kInferHalfInputs) continue;
        bool any_half = false;
        for (Node* c : Consumers(n)) any_half |= Painted(c, Color::kHalf);
        std::unordered_set<const Value*> half_inputs;
        for (const Value* v : FloatDataInputs(n))
          if (FromHalfNode(v)) half_inputs.insert(v);
        if (!any_half && half_inputs.size() >= 2) {
          rule_[n] = "infer: half inputs outnumber the one cast back";
          why_[n] = Why::kOther;
          continue;
        }
        if (!any_half) {
          Set(n, Color::kFp32, "infer: no half consumer");
          changed = true;
        }
      }
    }
  }

  Model& model_;
  const PrecisionPolicy& policy_;
  std::unordered_set<const Value*> static_values_;
  std::unordered_set<const Node*> shape_nodes_;
  std::unordered_set<const Node*> fixed_;
  std::vector<Node*> candidates_;
  std::unordered_map<Node*, OpClassInfo> info_;
  std::unordered_map<Node*, Color> color_;
  std::unordered_map<Node*, std::string> rule_;
  std::unordered_map<Node*, Why> why_;
};

}  // namespace

StatusOr<bool> PaintPrecision::Run(Model& model) {
  AMP_RETURN_IF_ERROR(policy_.Validate());
  if (policy_.level == OptLevel::kO0) return false;
  return Painter(model, policy_).Run();
}

}  // namespace amp
