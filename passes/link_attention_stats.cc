#include "passes/link_attention_stats.h"

#include <algorithm>
#include <vector>

#include "compiler/shape_inference.h"
#include "ops/attention.h"

namespace amp {
namespace {

bool IsAmp(const Node* n, const char* op) { return n->domain() == "ai.amp" && n->op_type() == op; }

// The ints of a view form's views for operands [first, first + count).
std::vector<int64_t> Views(const Node& n, size_t first, size_t count) {
  std::vector<int64_t> all = n.GetInts("views"), dims = n.GetInts("dims");
  if (dims.size() < 4) return {};
  size_t per = dims.size() - 4 + 3;
  if (all.size() < (first + count) * per) return {};
  return {all.begin() + first * per, all.begin() + (first + count) * per};
}

// Whether forward `f` computes the probabilities backward `g` recomputes.
bool SameAttention(const Node& f, const Node& g) {
  for (size_t i = 0; i < 3; ++i)
    if (f.input(i) != g.input(i)) return false;
  if (f.input(3) != g.input(4)) return false;
  if (f.GetFloat("alpha", 1.0f) != g.GetFloat("alpha", 1.0f)) return false;
  bool fv = f.HasAttr("views"), gv = g.HasAttr("views");
  if (fv != gv) return false;
  if (!fv) return f.GetInt("transB", 1) == g.GetInt("transB", 1);
  return f.GetInts("dims") == g.GetInts("dims") && Views(f, 0, 3) == Views(g, 0, 3) &&
         !Views(f, 3, 1).empty();
}

}  // namespace

StatusOr<bool> LinkAttentionStats::Run(Model& model) {
  Graph& g = *model.graph;
  std::vector<Node*> forwards, backwards;
  for (Node* n : g.nodes()) {
    if (IsAmp(n, "Attention")) forwards.push_back(n);
    if (IsAmp(n, "AttentionGrad") && !AttentionAttrs::Of(*n).forward) backwards.push_back(n);
  }
  bool changed = false;
  for (Node* b : backwards) {
    std::vector<Node*> match;
    for (Node* f : forwards)
      if (SameAttention(*f, *b)) match.push_back(f);
    if (match.size() != 1) continue;
    Node* f = match[0];
    if (f->num_outputs() < 2) {
      Value* st = g.AddNodeOutput(f, f->output(0)->name() + "_stats");
      st->mutable_type().dtype = DType::kFloat32;
    }
    while (b->num_inputs() < 5) b->AddInput(nullptr);
    b->AddInput(f->output(0));
    b->AddInput(f->output(1));
    if (b->HasAttr("views")) {
      std::vector<int64_t> views = b->GetInts("views"), o = Views(*f, 3, 1);
      views.insert(views.end(), o.begin(), o.end());
      b->SetAttr("views", Attribute::Ints(views));
    }
    changed = true;
  }
  if (!changed) return false;
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
