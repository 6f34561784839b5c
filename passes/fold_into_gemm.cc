#include "passes/fold_into_gemm.h"

#include <algorithm>
#include <optional>
#include <set>

#include "compiler/const_eval.h"
#include "compiler/shape_inference.h"
#include "passes/transpose_folding.h"

namespace amp {
namespace {

// A GEMM as MatMulT would compute it.
struct Gemm {
  Node* node = nullptr;
  Value* a = nullptr;
  Value* b = nullptr;
  bool ta = false, tb = false;
  float alpha = 1;
  std::optional<DType> out_type;
};

// `n` as a MatMulT: MatMul, MatMulT, or a Gemm without a bias.
std::optional<Gemm> AsGemm(Node* n) {
  if (!n) return std::nullopt;
  Gemm g;
  g.node = n;
  g.a = n->input(0);
  g.b = n->input(1);
  bool dflt = n->domain().empty() || n->domain() == "ai.onnx";
  if (dflt && n->op_type() == "MatMul") return g;
  // (A MatMulT with an epilogue, fuse-gemm-epilogue's, is not a product to
  // scale or transpose any more.)
  bool matmul_t = n->domain() == "ai.amp" && n->op_type() == "MatMulT" && !n->input(2) &&
                  !n->HasAttr("activation") && n->num_outputs() == 1;
  bool gemm = dflt && n->op_type() == "Gemm" && (!n->input(2) || n->GetFloat("beta", 1.0f) == 0.0f);
  if (!matmul_t && !gemm) return std::nullopt;
  g.ta = n->GetInt("transA", 0) != 0;
  g.tb = n->GetInt("transB", 0) != 0;
  g.alpha = n->GetFloat("alpha", 1.0f);
  if (matmul_t && n->HasAttr("out_type")) g.out_type = static_cast<DType>(n->GetInt("out_type", 0));
  return g;
}

// The value of a one-element float constant (a Constant node, or a folded
// initializer that is not a parameter or state), else nullopt.
std::optional<double> ScalarConstant(const Model& model, const Value* v,
                                     const std::set<std::string>& named) {
  if (!v || !IsFloat(v->dtype())) return std::nullopt;
  if (v->producer()) return ConstantNodeScalar(v);
  if (!v->has_initializer() || v->initializer()->num_elements() != 1 || named.count(v->name()))
    return std::nullopt;
  for (const auto& [state, update] : model.training.updates)
    if (state == v->name()) return std::nullopt;
  return v->initializer()->GetDouble(0);
}

}  // namespace

StatusOr<bool> FoldIntoGemm::Run(Model& model) {
  Graph& g = *model.graph;
  std::set<std::string> named = model.training.NamedValues();
  auto private_value = [&](const Value* y) {
    return y->uses().size() == 1 && !y->is_graph_output() && !named.count(y->name());
  };
  // Replaces `gemm` and the ops in `erase` (consumers first) by one MatMulT
  // computing `spec`, whose result is `result` (then renamed to its name).
  auto emit = [&](const Gemm& spec, Value* result, std::vector<Node*> erase) -> Status {
    Node* m = g.AddNode("MatMulT", {spec.a, spec.b}, {result->name() + "_gemm"}, "ai.amp");
    if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
    m->SetAttr("transA", Attribute::Int(spec.ta ? 1 : 0));
    m->SetAttr("transB", Attribute::Int(spec.tb ? 1 : 0));
    if (spec.alpha != 1.0f) m->SetAttr("alpha", Attribute::Float(spec.alpha));
    if (spec.out_type && *spec.out_type != spec.a->dtype())
      m->SetAttr("out_type", Attribute::Int(static_cast<int64_t>(*spec.out_type)));
    m->set_precision(spec.node->precision().compute, spec.node->precision().rule);
    m->set_name(spec.node->name());
    g.MoveBefore(m, spec.node);              // the GEMM's place in the schedule
    m->output(0)->set_type(result->type());  // (what the next fold reads)
    std::string name = result->name();
    g.ReplaceAllUsesWith(result, m->output(0));
    for (Node* n : erase) g.EraseNode(n);
    return g.RenameValue(m->output(0), name);
  };

  bool changed = false;
  for (bool again = true; again;) {
    again = false;
    for (Node* n : g.nodes()) {
      bool dflt = n->domain().empty() || n->domain() == "ai.onnx";
      if (!dflt) continue;
      const std::string& op = n->op_type();
      if (op == "Cast" || op == "Transpose" || op == "Mul") {
        // Epilogues: the op reads the GEMM's result and nothing else does.
        int from = 0;
        std::optional<double> scale;
        if (op == "Mul") {
          for (int i = 0; i < 2 && !scale; ++i)
            if ((scale = ScalarConstant(model, n->input(1 - i), named))) from = i;
          if (!scale) continue;
        }
        Value* y = n->input(from);
        auto spec = AsGemm(y->producer());
        if (!spec || !private_value(y)) continue;
        Value* z = n->output(0);
        if (op == "Cast") {
          DType to = z->dtype();
          if (!(to == DType::kFloat32 || to == DType::kFloat16 || to == DType::kBFloat16) ||
              !IsFloat(y->dtype()) || y->dtype() == DType::kFloat64 || y->dtype() == to)
            continue;
          spec->out_type = to;
        } else if (op == "Transpose") {
          if (SwapLastTwo(z) != n || !y->type().shape || y->type().shape->size() < 2) continue;
          // (A B)^T = B^T A^T, each operand read the other way.
          std::swap(spec->a, spec->b);
          bool ta = spec->ta;
          spec->ta = !spec->tb;
          spec->tb = !ta;
          // A vector operand (rank 1) has no axes to swap.
          if (spec->a->type().shape && spec->a->type().shape->size() < 2) continue;
          if (spec->b->type().shape && spec->b->type().shape->size() < 2) continue;
        } else {
          auto yd = y->type().shape ? StaticDims(*y->type().shape) : std::nullopt;
          auto zd = z->type().shape ? StaticDims(*z->type().shape) : std::nullopt;
          if (z->dtype() != y->dtype() || !yd || yd != zd) continue;
          spec->alpha = static_cast<float>(spec->alpha * *scale);
        }
        AMP_RETURN_IF_ERROR(emit(*spec, z, {n, spec->node}));
        changed = again = true;
        continue;
      }
    }
    // Prologue: a scaled operand that only GEMMs read (the attention's
    // scaled query, read again by the backward's GEMMs): each GEMM reads the
    // operand unscaled and scales its product.
    for (Node* mul : g.nodes()) {
      if (mul->op_type() != "Mul" || !(mul->domain().empty() || mul->domain() == "ai.onnx"))
        continue;
      Value* scaled = mul->output(0);
      if (scaled->uses().empty() || scaled->is_graph_output() || named.count(scaled->name()))
        continue;
      std::optional<double> scale;
      Value* x = nullptr;
      for (int j = 0; j < 2 && !scale; ++j)
        if ((scale = ScalarConstant(model, mul->input(1 - j), named))) x = mul->input(j);
      if (!scale) continue;
      auto xd = x->type().shape ? StaticDims(*x->type().shape) : std::nullopt;
      auto sd = scaled->type().shape ? StaticDims(*scaled->type().shape) : std::nullopt;
      if (x->dtype() != scaled->dtype() || !xd || xd != sd) continue;
      std::vector<Gemm> readers;
      for (const Use& u : scaled->uses()) {
        auto spec = AsGemm(u.node);
        // (A GEMM reading it as both operands would be scaled twice.)
        if (!spec || u.index > 1 || spec->a == spec->b) {
          readers.clear();
          break;
        }
        if (std::none_of(readers.begin(), readers.end(),
                         [&](const Gemm& r) { return r.node == spec->node; }))
          readers.push_back(*spec);
      }
      if (readers.empty()) continue;
      for (Gemm& spec : readers) {
        (spec.a == scaled ? spec.a : spec.b) = x;
        spec.alpha = static_cast<float>(spec.alpha * *scale);
        AMP_RETURN_IF_ERROR(emit(spec, spec.node->output(0), {spec.node}));
      }
      g.EraseNode(mul);
      changed = again = true;
      break;  // the node list changed
    }
  }
  if (!changed) return false;
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
