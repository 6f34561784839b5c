#include "passes/fuse_optimizer.h"

#include <map>
#include <nlohmann/json.hpp>

#include "compiler/shape_inference.h"

namespace amp {
namespace {

// The node producing `v` if it is `op`, else null.

struct Param {
  Value *p, *g, *m, *v;
  std::string p_update, m_update, v_update;  // the values the bindings name now
};

// Matches p's update as the optimizer pass writes it (see optimizer.cc):
//   m' = m*b1 + gr*(1-b1); v' = v*b2 + (gr*gr)*(1-b2)
//   p' = base - (m' / (sqrt(v')/sqrt(bc2) + eps)) * (lr/bc1)
// with gr = g (+ p*wd for Adam) and base = p (* (1 - lr*wd) for AdamW), each
// behind Where(skip, old, new) when the step can be skipped.
bool Match(const Graph& g, Value* p, const std::string& update, bool has_skip, bool adamw,
           bool decay, Param& out) {
  Value* u = g.FindValue(update);
  Value* p_new = u;
  if (has_skip) {
    Node* w = ProducerIf(u, "Where");
    if (!w || w->input(1) != p) return false;
    p_new = w->input(2);
  }
  Node* sub = ProducerIf(p_new, "Sub");
  if (!sub) return false;
  Value* base = sub->input(0);
  if (adamw && decay) {
    Node* mul = ProducerIf(base, "Mul");
    if (!mul || mul->input(0) != p) return false;
  } else if (base != p) {
    return false;
  }
  Node* delta = ProducerIf(sub->input(1), "Mul");
  Node* ratio = delta ? ProducerIf(delta->input(0), "Div") : nullptr;
  if (!ratio) return false;
  Value* m_next = ratio->input(0);
  Node* denom = ProducerIf(ratio->input(1), "Add");
  Node* v_hat = denom ? ProducerIf(denom->input(0), "Div") : nullptr;
  Node* v_sqrt = v_hat ? ProducerIf(v_hat->input(0), "Sqrt") : nullptr;
  if (!v_sqrt) return false;
  Value* v_next = v_sqrt->input(0);
  Node* m_add = ProducerIf(m_next, "Add");
  Node* v_add = ProducerIf(v_next, "Add");
  Node* m_b1 = m_add ? ProducerIf(m_add->input(0), "Mul") : nullptr;
  Node* g_b1 = m_add ? ProducerIf(m_add->input(1), "Mul") : nullptr;
  Node* v_b2 = v_add ? ProducerIf(v_add->input(0), "Mul") : nullptr;
  if (!m_b1 || !g_b1 || !v_b2) return false;
  Value* gr = g_b1->input(0);
  Value* grad = gr;
  if (!adamw && decay) {
    Node* add = ProducerIf(gr, "Add");
    Node* pw = add ? ProducerIf(add->input(1), "Mul") : nullptr;
    if (!pw || pw->input(0) != p) return false;
    grad = add->input(0);
  }
  out = {p, grad, m_b1->input(0), v_b2->input(0), update, "", ""};
  return out.m->has_initializer() && out.v->has_initializer() && grad->dtype() == DType::kFloat32;
}

}  // namespace

StatusOr<bool> FuseOptimizer::Run(Model& model) {
  Graph& g = *model.graph;
  TrainingInfo& t = model.training;
  auto meta = model.metadata.find("amp.optimizer");
  if (!t.active() || meta == model.metadata.end()) return false;
  nlohmann::json o = nlohmann::json::parse(meta->second, nullptr, false);
  if (o.is_discarded() || !o.is_object()) return false;
  std::string kind = o.value("kind", "");
  if (kind != "adam" && kind != "adamw") return false;
  bool adamw = kind == "adamw";
  float wd = o.value("weight_decay", 0.0f);
  Value* lr = g.FindValue("lr");
  Value* step = t.optimizer_step.empty() ? nullptr : g.FindValue(t.optimizer_step);
  Value* skip = t.skip_step.empty() ? nullptr : g.FindValue(t.skip_step);
  if (!lr || !step || !lr->is_graph_input()) return false;
  std::map<std::string, std::string> update_of(t.updates.begin(), t.updates.end());
  std::vector<Param> params;
  for (const std::string& name : t.trainable) {
    Value* p = g.FindValue(name);
    auto u = update_of.find(name);
    if (!p || u == update_of.end()) return false;
    Param pr;
    if (!Match(g, p, u->second, skip != nullptr, adamw, wd != 0, pr)) return false;
    auto mu = update_of.find(pr.m->name());
    auto vu = update_of.find(pr.v->name());
    if (mu == update_of.end() || vu == update_of.end()) return false;
    pr.m_update = mu->second;
    pr.v_update = vu->second;
    params.push_back(pr);
  }
  if (params.empty()) return false;
  std::vector<Value*> inputs = {lr, step, skip};
  for (auto field : {&Param::p, &Param::g, &Param::m, &Param::v})
    for (const Param& pr : params) inputs.push_back(pr.*field);
  std::vector<std::string> names;
  for (const Param& pr : params) names.push_back(pr.p->name() + ".fused_next");
  for (const Param& pr : params) names.push_back(pr.m->name() + ".fused_next");
  for (const Param& pr : params) names.push_back(pr.v->name() + ".fused_next");
  Node* fused = g.AddNode("FusedAdam", inputs, names, "ai.amp");
  if (model.OpsetVersion("ai.amp") == 0) model.opsets.push_back({"ai.amp", 1});
  fused->SetAttr("beta1", Attribute::Float(o.value("beta1", 0.9f)));
  fused->SetAttr("beta2", Attribute::Float(o.value("beta2", 0.999f)));
  fused->SetAttr("eps", Attribute::Float(o.value("eps", 1e-8f)));
  fused->SetAttr("weight_decay", Attribute::Float(wd));
  fused->SetAttr("decoupled", Attribute::Int(adamw ? 1 : 0));
  fused->set_precision(DType::kFloat32, "optimizer: FP32 master weights and state");
  // Every binding of p, m and v now names the fused outputs.
  std::map<std::string, Value*> replacement;
  size_t n = params.size();
  for (size_t i = 0; i < n; ++i) {
    replacement[params[i].p_update] = fused->output(i);
    replacement[params[i].m_update] = fused->output(n + i);
    replacement[params[i].v_update] = fused->output(2 * n + i);
  }
  for (auto& [state, update] : t.updates) {
    auto it = replacement.find(update);
    if (it == replacement.end()) continue;
    Value* old = g.FindValue(update);
    g.ReplaceAllUsesWith(old, it->second);
    update = it->second->name();
  }
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(InferShapes(model));
  return true;
}

}  // namespace amp
