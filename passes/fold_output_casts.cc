#include "passes/fold_output_casts.h"

#include <unordered_set>
#include <vector>

#include "compiler/shape_inference.h"
#include "passes/fold_casts.h"

namespace amp {
namespace {

bool IsLayerNormGrad(const Node* n) {
  return n && n->domain() == "ai.amp" && n->op_type() == "LayerNormGrad";
}

}  // namespace

StatusOr<bool> FoldOutputCasts::Run(Model& model) {
  Graph& g = *model.graph;
  PinnedValues pinned(model, keep_);
  std::unordered_set<const Node*> erased;  // compared, never dereferenced
  bool changed = false;
  for (Node* c : g.nodes()) {
    if (erased.count(c) || !IsDefaultOp(c, "Cast")) continue;
    const DType to = static_cast<DType>(c->GetInt("to", 0));
    Value* out = c->output(0);
    // (The Cast's output may be a step output or a kept value: the
    // kernel's new output takes its name and its readers.)
    if (!IsFloat(to) || !IsFloat(c->input(0)->dtype()) || to == c->input(0)->dtype()) continue;
    // Up through layout ops whose outputs only the next one reads.
    std::vector<Node*> chain;  // from the Cast's input up
    Value* v = c->input(0);
    for (Node* p = v->producer(); p && IsPureLayout(*p) && pinned.Private(v); p = v->producer()) {
      chain.push_back(p);
      v = p->input(0);
    }
    Node* producer = v->producer();
    if (!producer || producer->output(0) != v) continue;
    Value* head = nullptr;  // the producer's output in the Cast's type
    if (IsDefaultOp(producer, "LayerNormalization") && pinned.Private(v)) {
      std::vector<std::string> names;
      for (const Value* o : producer->outputs()) names.push_back(o->name() + "_narrow");
      Node* f = g.AddNode("LayerNormalization", producer->inputs(), names, "ai.amp");
      if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
      for (const auto& [key, attr] : producer->attributes()) f->SetAttr(key, attr);
      f->SetAttr("y_type", Attribute::Int(static_cast<int64_t>(to)));
      f->set_name(producer->name());
      f->set_precision(producer->precision().compute, producer->precision().rule);
      g.MoveBefore(f, producer);
      std::vector<std::pair<Value*, Value*>> pairs;
      for (size_t k = 0; k < producer->num_outputs(); ++k)
        pairs.emplace_back(producer->output(k), f->output(k));
      erased.insert(producer);
      AMP_RETURN_IF_ERROR(g.Substitute(pairs, {producer}));
      head = f->output(0);
      head->mutable_type().dtype = to;
    } else if (IsLayerNormGrad(producer)) {
      if (producer->num_outputs() > 4) {
        if (static_cast<DType>(producer->GetInt("copy_type", 0)) != to) continue;
        head = producer->output(4);
      } else {
        // Outputs 2 and 3 (the bias's gradient, dx's row sums) unread where
        // the node had none.
        while (producer->num_outputs() < 4) g.AddNodeOutput(producer, v->name() + "_unread");
        head = g.AddNodeOutput(producer, out->name() + "_copy");
        producer->SetAttr("copy_type", Attribute::Int(static_cast<int64_t>(to)));
        head->set_type(TensorType{to, v->type().shape});
      }
      if (!chain.empty()) chain.back()->SetInput(0, head);
    } else {
      continue;
    }
    // The layout ops now move the narrow values; the Cast goes.
    for (Node* l : chain) {
      l->output(0)->mutable_type().dtype = to;
      if (l->precision().decided()) l->set_precision(to, l->precision().rule);
    }
    Value* now = chain.empty() ? head : chain.front()->output(0);
    erased.insert(c);
    AMP_RETURN_IF_ERROR(g.Substitute({{out, now}}, {c}));
    changed = true;
  }
  if (!changed) return false;
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
