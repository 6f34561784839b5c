#include "passes/data_parallel.h"

#include <algorithm>
#include <unordered_map>

#include "compiler/shape_inference.h"

namespace amp {

StatusOr<bool> DataParallel::Run(Model& model) {
  Graph& g = *model.graph;
  TrainingInfo& t = model.training;
  if (!t.active() || t.gradients.empty()) return false;
  for (const Node* n : g.nodes())
    if (n->domain() == "ai.amp" && n->op_type() == "AllReduce") return false;  // already
  if (!t.skip_step.empty() || t.has_optimizer)
    return InvalidArgument(
        "data-parallel runs after autodiff and before loss-scaling and the optimizer (the "
        "gradients they read must be the reduced ones)");
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  std::unordered_map<const Node*, size_t> position;
  size_t i = 0;
  for (const Node* n : g.nodes()) position[n] = i++;
  // Autodiff exposes each gradient through an Identity (what loss-scaling
  // and the optimizer read): the AllReduce goes between the Identity and the
  // value the backward pass computed, so that contract holds after it.
  struct Grad {
    size_t at;     // where the backward pass computes it
    Node* expose;  // the Identity
    Value* value;  // its input
  };
  std::vector<Grad> grads;
  for (const auto& [param, name] : t.gradients) {
    Node* expose = ProducerIf(g.FindValue(name), "Identity");
    if (!expose)
      return Internal("the gradient '", name, "' of '", param,
                      "' is not exposed by an Identity (run data-parallel right after autodiff)");
    Value* computed = expose->input(0);
    if (computed->dtype() != DType::kFloat32)
      return Unimplemented("data-parallel reduces FP32 gradients; the gradient of '", param,
                           "' is ", DTypeName(computed->dtype()));
    size_t at = computed->producer() ? position.at(computed->producer()) : 0;
    grads.push_back({at, expose, computed});
  }
  std::stable_sort(grads.begin(), grads.end(),
                   [](const Grad& a, const Grad& b) { return a.at < b.at; });
  if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
  // Outputs are named after what they reduce: "<param>_grad_reduced".
  auto reduce = [&](const std::vector<Value*>& values, const std::vector<std::string>& names) {
    Node* n = g.AddNode("AllReduce", values, names, "ai.amp");
    n->set_precision(DType::kFloat32, "data-parallel: gradients are reduced in FP32");
    return n;
  };
  // Buckets in production order, each closed once it holds bucket_bytes.
  std::vector<std::vector<Grad>> buckets(1);
  size_t bytes = 0;
  for (const Grad& gr : grads) {
    const auto& shape = gr.value->type().shape;
    size_t b = static_cast<size_t>(shape ? StaticNumElements(*shape).value_or(0) : 0) * 4;
    if (!buckets.back().empty() && bytes + b > options_.bucket_bytes) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(gr);
    bytes += b;
  }
  for (const auto& bucket : buckets) {
    std::vector<Value*> values;
    std::vector<std::string> names;
    for (const Grad& gr : bucket) {
      values.push_back(gr.value);
      names.push_back(gr.expose->output(0)->name() + "_reduced");
    }
    Node* n = reduce(values, names);
    for (size_t k = 0; k < bucket.size(); ++k) bucket[k].expose->SetInput(0, n->output(k));
  }
  // The loss every rank reports is the global batch's (the mean of the
  // ranks' means: equal local batches).
  Value* loss = g.FindValue(t.loss);
  if (!loss) return Internal("the step's loss '", t.loss, "' is absent");
  Node* n = reduce({loss}, {loss->name() + "_reduced"});
  g.ReplaceAllUsesWith(loss, n->output(0));
  n->SetInput(0, loss);
  t.loss = n->output(0)->name();
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
