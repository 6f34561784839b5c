#include "compiler/verifier.h"

#include <algorithm>
#include <unordered_set>

#include "compiler/shape_inference.h"

namespace amp {

Status VerifyModel(const Model& model) {
  const Graph& g = *model.graph;
  std::unordered_set<const Value*> defined;
  // `how` is built only for the error: a node's Describe() walks the graph.
  auto define = [&](const Value* v, const auto& how) -> Status {
    if (!defined.insert(v).second)
      return InvalidArgument("value '", v->name(), "' is defined more than once (", how(), ")");
    return Status::Ok();
  };
  for (const Value* v : g.inputs()) {
    if (v->has_initializer())
      return InvalidArgument("graph input '", v->name(), "' also has initializer data");
    AMP_RETURN_IF_ERROR(define(v, [] { return std::string("graph input"); }));
  }
  for (const Value* v : g.initializers())
    AMP_RETURN_IF_ERROR(define(v, [] { return std::string("initializer"); }));
  for (const Node* n : g.nodes()) {
    for (size_t i = 0; i < n->num_inputs(); ++i) {
      const Value* in = n->input(i);
      if (!in) continue;
      if (in->graph() != &g)
        return InvalidArgument(n->Describe(), " reads '", in->name(), "' from another graph");
      if (!defined.count(in))
        return InvalidArgument(n->Describe(), " reads '", in->name(),
                               in->producer()
                                   ? "' before the node that defines it (not in topological order)"
                                   : "', which nothing defines");
      const auto& uses = in->uses();
      if (std::find(uses.begin(), uses.end(), Use{const_cast<Node*>(n), static_cast<int>(i)}) ==
          uses.end())
        return Internal(n->Describe(), ": use list of '", in->name(), "' misses input ", i);
    }
    for (size_t i = 0; i < n->num_outputs(); ++i) {
      const Value* out = n->output(i);
      if (out->producer() != n || out->producer_index() != static_cast<int>(i))
        return Internal(n->Describe(), ": output '", out->name(), "' has a wrong producer link");
      AMP_RETURN_IF_ERROR(define(out, [n] { return StrCat("output of ", n->Describe()); }));
    }
  }
  for (const Node* n : g.nodes())
    for (const Value* out : n->outputs())
      for (const Use& u : out->uses())
        if (u.node->input(u.index) != out)
          return Internal("use list of '", out->name(), "' names a slot that reads something else");
  for (const Value* v : g.outputs()) {
    if (!defined.count(v)) return InvalidArgument("graph output '", v->name(), "' is not defined");
  }
  for (const Value* v : g.inputs())
    if (v->dtype() == DType::kUndefined)
      return InvalidArgument("graph input '", v->name(), "' has no element type");
  const TrainingInfo& t = model.training;
  if (t.active()) {
    const Value* loss = g.FindValue(t.loss);
    if (!loss) return InvalidArgument("the training loss '", t.loss, "' is not a value");
    for (const auto& p : t.trainable) {
      const Value* v = g.FindValue(p);
      if (!v || !v->has_initializer())
        return InvalidArgument("trainable parameter '", p, "' is not an initializer");
    }
    for (const auto& [param, grad] : t.gradients)
      if (!g.FindValue(param) || !g.FindValue(grad))
        return InvalidArgument("gradient '", grad, "' of '", param, "' is not a value");
    // The typed description names values the step has.
    auto must_be = [&](const std::string& name, const char* what, bool initializer) -> Status {
      const Value* v = name.empty() ? nullptr : g.FindValue(name);
      if (!v || (initializer && !v->has_initializer()))
        return InvalidArgument("the step's description names ", what, " '", name,
                               "', which is not ", initializer ? "an initializer" : "a value");
      return Status::Ok();
    };
    for (const auto& [param, name] : t.unscaled)
      AMP_RETURN_IF_ERROR(must_be(name, "the unscaled gradient", false));
    // (fuse-unscale may take 1/S inside its node: then nothing names it.)
    if (!t.unscaled.empty() && !t.inverse_scale.empty())
      AMP_RETURN_IF_ERROR(must_be(t.inverse_scale, "1/S", false));
    for (const auto& [param, name] : t.half_copies)
      AMP_RETURN_IF_ERROR(must_be(name, "the half copy", false));
    const OptimizerInfo& o = t.optimizer;
    if (o.kind != OptimizerKind::kNone) {
      const Value* lr = g.FindValue(o.lr);
      if (!lr || !lr->is_graph_input())
        return InvalidArgument("the optimizer's learning rate '", o.lr, "' is not a graph input");
    }
    for (const auto& p : o.params) {
      AMP_RETURN_IF_ERROR(must_be(p.param, "the parameter", true));
      AMP_RETURN_IF_ERROR(must_be(p.grad, "the gradient", false));
      for (const std::string* s : {&p.exp_avg, &p.exp_avg_sq, &p.momentum_buffer})
        if (!s->empty()) AMP_RETURN_IF_ERROR(must_be(*s, "optimizer state", true));
    }
    for (const auto& [state, update] : t.updates) {
      const Value* s = g.FindValue(state);
      const Value* u = g.FindValue(update);
      if (!s || !s->has_initializer())
        return InvalidArgument("training state '", state, "' is not an initializer");
      if (!u) return InvalidArgument("the update of '", state, "' ('", update, "') is not a value");
      if (u->dtype() != s->dtype())
        return InvalidArgument("the update of '", state, "' is ", DTypeName(u->dtype()),
                               " but the state is ", DTypeName(s->dtype()));
    }
  }
  return CheckTypes(model);
}

}  // namespace amp
