#include "passes/fold_attention_views.h"

#include <algorithm>
#include <unordered_set>
#include <vector>

#include "compiler/shape_inference.h"
#include "compiler/strided_view.h"
#include "ops/attention.h"

namespace amp {
namespace {

bool IsAttentionNode(const Node* n) {
  return n->domain() == "ai.amp" &&
         (n->op_type() == "Attention" || n->op_type() == "AttentionGrad");
}

// Operand o of layout l as a view of the tensor holding it.
StridedView OperandView(const AttentionLayout& l, size_t o, bool grad) {
  bool query_rows = o == kAttnQ || o == kAttnO || (grad && o == kAttnDQ);
  bool dv_cols = o == kAttnV || o == kAttnO || (grad && o == kAttnDV);
  const AttentionOperand& op = l.operands[o];
  StridedView v;
  v.offset = op.offset;
  v.sizes = l.batch;
  v.sizes.push_back(query_rows ? l.sq : l.sk);
  v.sizes.push_back(dv_cols ? l.dv : l.d);
  v.strides = op.batch_strides;
  v.strides.push_back(op.row);
  v.strides.push_back(op.col);
  return v;
}

bool HasConcat(const ValueView& w) {
  return std::any_of(w.walked.begin(), w.walked.end(),
                     [](const Node* n) { return IsDefaultOp(n, "Concat"); });
}

// The three gradients' walks end in one value through Concats whose every
// input is on one of the walks.
bool Packed(const std::vector<ValueView>& w, const std::vector<Value*>& starts) {
  if (w[0].base != w[1].base || w[0].base != w[2].base || w[0].base == starts[0]) return false;
  std::unordered_set<const Value*> on;
  for (size_t i = 0; i < w.size(); ++i) {
    on.insert(starts[i]);
    for (const Node* n : w[i].walked) on.insert(n->output(0));
  }
  for (const ValueView& v : w)
    for (const Node* n : v.walked)
      if (IsDefaultOp(n, "Concat"))
        for (size_t i = 0; i < n->num_inputs(); ++i)
          if (!on.count(n->input(i))) return false;
  return true;
}

void AppendView(std::vector<int64_t>& out, const StridedView& v) {
  out.push_back(v.offset);
  out.insert(out.end(), v.strides.begin(), v.strides.end());
}

}  // namespace

StatusOr<bool> FoldAttentionViews::Run(Model& model) {
  Graph& g = *model.graph;
  PinnedValues pinned(model, keep_);
  auto stop = [&](const Value* v) { return pinned(v); };
  // A value whose only reader is a Concat: where a walk that may not pass
  // one stops.
  auto stop_at_concat = [&](const Value* v) {
    return pinned(v) || (v->uses().size() == 1 && IsDefaultOp(v->uses()[0].node, "Concat"));
  };
  bool changed = false;
  std::unordered_set<const Node*> erased;  // compared, never dereferenced
  for (Node* n : g.nodes()) {
    if (erased.count(n) || !IsAttentionNode(n)) continue;
    bool grad = n->op_type() == "AttentionGrad";
    size_t ins = grad ? 4 : 3;
    std::vector<std::vector<int64_t>> dims;
    for (size_t i = 0; i < ins; ++i) {
      auto d = StaticDimsOf(n->input(i));
      if (!d) break;
      dims.push_back(*d);
    }
    if (dims.size() != ins) continue;
    AttentionAttrs attrs = AttentionAttrs::Of(*n);
    // (link-attention-stats, which adds the statistics, runs after this.)
    if (attrs.stats || attrs.forward) continue;
    auto layout = AttentionLayoutOf(attrs, dims);
    if (!layout.ok()) continue;  // the verifier names it
    const AttentionLayout& l = *layout;
    // Inputs: up through their layout producers.
    std::vector<ValueView> reads;
    for (size_t i = 0; i < ins; ++i) {
      auto r = ReadView(n->input(i), OperandView(l, i, grad));
      if (!r) break;
      reads.push_back(*r);
    }
    if (reads.size() != ins) continue;
    // Outputs: down into the values their layout readers make.
    std::vector<Value*> outs;
    for (size_t o = 0; o < n->num_outputs(); ++o) outs.push_back(n->output(o));
    if (std::any_of(outs.begin(), outs.end(), [](const Value* v) { return !v; })) continue;
    std::vector<size_t> out_operands = {kAttnO};
    if (grad) out_operands = {kAttnDQ, kAttnDK, kAttnDV};  // (into one output when packed)
    std::vector<ValueView> writes;
    std::vector<Value*> starts;
    for (size_t o : out_operands) {
      Value* v = outs[l.operands[o].tensor];
      starts.push_back(v);
      writes.push_back(WriteView(v, OperandView(l, o, grad), stop));
    }
    bool packed = grad && outs.size() == 3 && Packed(writes, starts);
    if (grad && outs.size() == 1 &&
        (writes[0].base != writes[1].base || writes[0].base != writes[2].base ||
         HasConcat(writes[0])))
      for (size_t i = 0; i < writes.size(); ++i)
        writes[i] = ValueView{starts[i], OperandView(l, out_operands[i], grad), {}};
    if (!packed && !(grad && outs.size() == 1)) {
      // Alone, no walk may pass a Concat (its other inputs are other
      // nodes'), and two outputs must not become one value.
      for (size_t i = 0; i < writes.size(); ++i)
        if (HasConcat(writes[i]))
          writes[i] = WriteView(starts[i], OperandView(l, out_operands[i], grad), stop_at_concat);
      if (grad && outs.size() == 3) {
        bool distinct = writes[0].base != writes[1].base && writes[0].base != writes[2].base &&
                        writes[1].base != writes[2].base;
        if (!distinct)
          for (size_t i = 0; i < writes.size(); ++i)
            writes[i] = ValueView{starts[i], OperandView(l, out_operands[i], grad), {}};
      }
    }
    bool moved = std::any_of(reads.begin(), reads.end(),
                             [](const ValueView& r) { return !r.walked.empty(); }) ||
                 std::any_of(writes.begin(), writes.end(),
                             [](const ValueView& w) { return !w.walked.empty(); });
    if (!moved) continue;
    // The view form's attributes.
    AttentionAttrs va;
    va.grad = grad;
    va.describe = n->Describe();
    va.has_views = true;
    va.dims = l.batch;
    va.dims.insert(va.dims.end(), {l.sq, l.sk, l.d, l.dv});
    for (const ValueView& r : reads) AppendView(va.views, r.view);
    std::vector<Value*> results;  // the values the new node makes
    if (packed || (grad && outs.size() == 1)) {
      results = {writes[0].base};
    } else {
      for (const ValueView& w : writes) results.push_back(w.base);
    }
    for (const ValueView& w : writes) AppendView(va.views, w.view);
    va.num_outputs = results.size();
    for (const Value* r : results) {
      auto d = StaticDimsOf(r);
      if (!d) break;
      va.out_shapes.push_back(static_cast<int64_t>(d->size()));
      va.out_shapes.insert(va.out_shapes.end(), d->begin(), d->end());
    }
    std::vector<std::vector<int64_t>> base_dims;
    for (const ValueView& r : reads) base_dims.push_back(*StaticDimsOf(r.base));
    auto vl = AttentionLayoutOf(va, base_dims);
    if (!vl.ok()) continue;
    if (grad) {
      bool ok = true;
      for (int o = 0; o < static_cast<int>(results.size()) && ok; ++o) {
        auto tiled = AttentionOutputTiled(va, *vl, o);
        ok = tiled.ok() && *tiled;
      }
      if (!ok) continue;  // each result must be all this node's
    }
    // The new node where the old one was.
    std::vector<Value*> inputs;
    for (const ValueView& r : reads) inputs.push_back(r.base);
    if (n->input(ins)) inputs.push_back(n->input(ins));  // the mask
    std::vector<std::string> names;
    for (const Value* r : results) names.push_back(r->name() + "_av");
    Node* f = g.AddNode(n->op_type(), inputs, names, "ai.amp");
    f->set_name(n->name());
    for (const char* a : {"alpha", "grad_alpha", "out_type", "out_types"})
      if (const Attribute* at = n->FindAttr(a)) f->SetAttr(a, *at);
    f->SetAttr("dims", Attribute::Ints(va.dims));
    f->SetAttr("views", Attribute::Ints(va.views));
    f->SetAttr("out_shapes", Attribute::Ints(va.out_shapes));
    g.MoveBefore(f, n);
    std::vector<std::pair<Value*, Value*>> subst;
    for (size_t i = 0; i < results.size(); ++i) subst.emplace_back(results[i], f->output(i));
    std::vector<Node*> replaced = {n};
    for (const ValueView& w : writes)
      for (Node* m : w.walked)
        if (std::find(replaced.begin(), replaced.end(), m) == replaced.end()) replaced.push_back(m);
    for (Node* m : replaced) erased.insert(m);
    AMP_RETURN_IF_ERROR(g.Substitute(subst, replaced));
    // The layout nodes above that nothing reads any more.
    for (bool again = true; again;) {
      again = false;
      for (const ValueView& r : reads)
        for (Node* m : r.walked) {
          if (erased.count(m)) continue;
          bool unused = true;
          for (size_t i = 0; i < m->num_outputs(); ++i) {
            const Value* v = m->output(i);
            unused = unused && (!v || (v->uses().empty() && !v->is_graph_output() && !pinned(v)));
          }
          if (!unused) continue;
          erased.insert(m);
          g.EraseNode(m);
          again = true;
        }
    }
    changed = true;
  }
  if (!changed) return false;
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
