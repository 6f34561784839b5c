#include "passes/fuse_conv_weight_grad.h"

#include <optional>
#include <vector>

#include "compiler/const_eval.h"
#include "compiler/shape_inference.h"

namespace amp {
namespace {

// The node computing `v` when it is a Transpose swapping the first two of
// four axes.
Node* SwapFirstTwo(const Value* v) {
  Node* t = ProducerIf(v, "Transpose");
  return t && t->GetInts("perm") == std::vector<int64_t>{1, 0, 2, 3} ? t : nullptr;
}

// The ints a Constant node gives `v`, if it does.
std::optional<std::vector<int64_t>> ConstantInts(const Value* v) {
  auto t = ConstantNodeTensor(v);
  if (!t) return std::nullopt;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < t->num_elements(); ++i) out.push_back(t->GetInt(i));
  return out;
}

}  // namespace

StatusOr<bool> FuseConvWeightGrad::Run(Model& model) {
  Graph& g = *model.graph;
  PinnedValues pinned(model, keep_);
  auto private_value = [&](const Value* v) { return pinned.Private(v); };
  bool changed = false;
  std::set<const Node*> erased;  // (the list below still holds them)
  for (Node* back : g.nodes()) {
    if (erased.count(back) || !SwapFirstTwo(back->output(0))) continue;
    Value* r = back->input(0);
    if (!private_value(r)) continue;
    // A widening Cast of the (half) result, which insert-casts puts there,
    // and the Slice a stride needs, in either order.
    Node* cast = nullptr;
    Node* slice = nullptr;
    bool ok = true;
    while (ok && (IsDefaultOp(r->producer(), "Cast") || IsDefaultOp(r->producer(), "Slice"))) {
      Node* p = r->producer();
      Node*& seen = IsDefaultOp(p, "Cast") ? cast : slice;
      ok = !seen && private_value(p->input(0));
      seen = p;
      r = p->input(0);
    }
    if (!ok || (cast && cast->output(0)->dtype() != DType::kFloat32)) continue;
    Node* conv = r->producer();
    if (!IsDefaultOp(conv, "Conv") || conv->num_inputs() != 2 || conv->GetInt("group", 1) != 1 ||
        conv->GetString("auto_pad", "NOTSET") != "NOTSET" || !private_value(conv->output(0)))
      continue;
    Node* tx = SwapFirstTwo(conv->input(0));
    Node* tdy = SwapFirstTwo(conv->input(1));
    if (!tx || !tdy || !private_value(tx->output(0)) || !private_value(tdy->output(0))) continue;
    auto dw =
        back->output(0)->type().shape ? StaticDims(*back->output(0)->type().shape) : std::nullopt;
    if (!dw || dw->size() != 4) continue;
    if (slice) {
      // Only the cut of the kernel's trailing positions.
      auto starts = ConstantInts(slice->input(1)), ends = ConstantInts(slice->input(2));
      auto axes = slice->input(3) ? ConstantInts(slice->input(3)) : std::nullopt;
      if (!starts || !ends || !axes || *starts != std::vector<int64_t>{0, 0} ||
          *ends != std::vector<int64_t>{(*dw)[2], (*dw)[3]} ||
          *axes != std::vector<int64_t>{2, 3} || slice->input(4))
        continue;
    }
    Node* fused = g.AddNode("ConvWeightGrad", {tx->input(0), tdy->input(0)},
                            {back->output(0)->name() + "_fused"}, "ai.amp");
    if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
    fused->SetAttr("kernel_shape", Attribute::Ints({(*dw)[2], (*dw)[3]}));
    fused->SetAttr("strides", Attribute::Ints(conv->GetInts("dilations", {1, 1})));
    fused->SetAttr("dilations", Attribute::Ints(conv->GetInts("strides", {1, 1})));
    fused->SetAttr("pads", Attribute::Ints(conv->GetInts("pads", {0, 0, 0, 0})));
    if (cast && cast->input(0)->dtype() != DType::kFloat32)
      fused->SetAttr("out_type", Attribute::Int(static_cast<int64_t>(DType::kFloat32)));
    fused->set_precision(conv->precision().compute, conv->precision().rule);
    fused->set_name(conv->name());
    g.MoveBefore(fused, back);
    std::vector<Node*> replaced = {back};
    if (cast) replaced.push_back(cast);
    if (slice) replaced.push_back(slice);
    for (Node* n : {conv, tx, tdy}) replaced.push_back(n);
    erased.insert(replaced.begin(), replaced.end());
    AMP_RETURN_IF_ERROR(g.Substitute({{back->output(0), fused->output(0)}}, replaced));
    changed = true;
  }
  if (!changed) return false;
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
