#include "passes/transpose_folding.h"

#include <vector>

#include "compiler/shape_inference.h"

namespace amp {

Node* SwapLastTwo(const Value* v) {
  Node* t = ProducerIf(v, "Transpose");
  if (!t || !t->input(0)->type().shape) return nullptr;
  size_t rank = t->input(0)->type().shape->size();
  std::vector<int64_t> perm = t->GetInts("perm");
  if (rank < 2 || perm.size() != rank) return nullptr;
  for (size_t i = 0; i + 2 < rank; ++i)
    if (perm[i] != static_cast<int64_t>(i)) return nullptr;
  if (perm[rank - 2] != static_cast<int64_t>(rank - 1) ||
      perm[rank - 1] != static_cast<int64_t>(rank - 2))
    return nullptr;
  return t;
}

StatusOr<bool> TransposeFolding::Run(Model& model) {
  Graph& g = *model.graph;
  bool changed = false;
  // To a fixpoint: a GEMM this loop makes may read another Transpose (the
  // backward of MatMul(x, Transpose(w)) reads Transpose(Transpose(w))).
  for (bool again = true; again;) {
    again = false;
    for (Node* n : g.nodes()) {
      bool matmul = n->op_type() == "MatMul" && n->domain().empty();
      bool matmul_t = n->op_type() == "MatMulT" && n->domain() == "ai.amp";
      bool gemm = n->op_type() == "Gemm" && n->domain().empty();
      if (!matmul && !matmul_t && !gemm) continue;
      bool flip[2] = {false, false};
      Value* source[2] = {n->input(0), n->input(1)};
      for (int i = 0; i < 2; ++i)
        if (Node* t = SwapLastTwo(n->input(i)); t && t->input(0)->type().shape->size() >= 2) {
          flip[i] = true;
          source[i] = t->input(0);
        }
      if (!flip[0] && !flip[1]) continue;
      const char* attr[2] = {"transA", "transB"};
      if (gemm) {
        for (int i = 0; i < 2; ++i)
          if (flip[i]) {
            n->SetAttr(attr[i], Attribute::Int(n->GetInt(attr[i], 0) ? 0 : 1));
            n->SetInput(i, source[i]);
          }
      } else {
        // MatMul (or a MatMulT folded before) becomes MatMulT with the flags.
        // (A MatMulT keeps what else it has: alpha, out_type, an epilogue.)
        if (n->num_outputs() != 1) continue;
        std::vector<Value*> in = n->inputs();
        in[0] = source[0];
        in[1] = source[1];
        Node* t = g.AddNode("MatMulT", in, {n->output(0)->name() + "_t"}, "ai.amp");
        if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
        for (const auto& [name, value] : n->attributes()) t->SetAttr(name, value);
        for (int i = 0; i < 2; ++i)
          t->SetAttr(attr[i], Attribute::Int((n->GetInt(attr[i], 0) != 0) != flip[i] ? 1 : 0));
        t->set_precision(n->precision().compute, n->precision().rule);
        t->set_name(n->name());
        g.MoveBefore(t, n);  // the MatMul's place in the schedule, not the end
        Value* out = n->output(0);
        std::string name = out->name();
        g.ReplaceAllUsesWith(out, t->output(0));
        g.EraseNode(n);
        // The result keeps its name (the step's description may name it).
        AMP_RETURN_IF_ERROR(g.RenameValue(t->output(0), name));
      }
      changed = again = true;
    }
  }
  if (!changed) return false;
  // Transposes nobody reads any more.
  // (Consumers first: a Transpose read only by a folded Transpose goes too.)
  std::vector<Node*> nodes = g.nodes();
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it)
    if (Node* n = *it; n->op_type() == "Transpose" && n->domain().empty() &&
                       n->output(0)->uses().empty() && !n->output(0)->is_graph_output())
      g.EraseNode(n);
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
