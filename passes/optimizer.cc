#include "passes/optimizer.h"

#include <cmath>
#include <unordered_set>

#include "compiler/shape_inference.h"

namespace amp {
namespace {

class Builder {
 public:
  explicit Builder(Graph& g) : g_(g) {}
  Value* Op(const std::string& op, const std::vector<Value*>& in, const std::string& name) {
    return g_.AddNode(op, in, {name})->output(0);
  }
  Value* Scalar(double v, const std::string& name) {
    return g_.AddScalar(name, DType::kFloat32, v);
  }
  Value* ZerosLike(const Value* v, const std::string& name) {
    Tensor t(v->dtype(), v->initializer()->dims());
    return g_.AddInitializer(name, std::move(t));
  }

 private:
  Graph& g_;
};

}  // namespace

StatusOr<bool> Optimizer::Run(Model& model) {
  Graph& g = *model.graph;
  TrainingInfo& t = model.training;
  if (t.has_optimizer) return false;  // already added: nothing to do
  if (!t.active() || t.gradients.empty())
    return InvalidArgument("the optimizer needs gradients: run attach-loss and autodiff first");
  t.has_optimizer = true;
  size_t first_own_update = t.updates.size();  // loss scaling's come before
  OptimizerOptions o = options_;
  if (o.kind != "sgd" && o.kind != "adam" && o.kind != "adamw")
    return InvalidArgument("unknown optimizer '", o.kind, "' (sgd, adam or adamw)");
  if (std::isnan(o.lr)) {
    if (o.kind == "sgd")
      return InvalidArgument(
          "optimizer sgd needs a learning rate (--lr): PyTorch's SGD has no default; pass e.g. "
          "--lr 0.01 (Adam and AdamW default to 1e-3)");
    o.lr = 1e-3f;  // torch.optim.Adam's and AdamW's default
  }
  // Written so that NaN fails every test (NaN < 0 is false) and inf the
  // finiteness one.
  auto at_least_0 = [](double v) { return v >= 0 && std::isfinite(v); };
  if (!at_least_0(o.lr) || !at_least_0(o.momentum) || !at_least_0(o.dampening) ||
      !at_least_0(o.weight_decay) || !at_least_0(o.eps) || !(o.beta1 >= 0 && o.beta1 < 1) ||
      !(o.beta2 >= 0 && o.beta2 < 1))
    return InvalidArgument(
        "optimizer hyperparameters out of range (lr, momentum, dampening, weight decay, eps: "
        "finite and >= 0; 0 <= betas < 1)");
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
    return InvalidArgument("nesterov momentum requires a momentum and zero dampening");
  if (g.FindValue("lr")) return InvalidArgument("the model already has a value named 'lr'");
  Builder b(g);
  std::vector<Node*> before = g.nodes();
  std::unordered_set<const Node*> forward(before.begin(), before.end());
  Value* lr = g.AddInput("lr", {DType::kFloat32, Shape{}});
  // The typed description: what fuse-optimizer replaces, amp-train binds
  // and the report prints.
  OptimizerInfo& info = t.optimizer;
  info.kind = ParseOptimizerKind(o.kind);
  info.lr = lr->name();
  info.default_lr = o.lr;
  info.momentum = o.momentum;
  info.dampening = o.dampening;
  info.nesterov = o.nesterov;
  info.weight_decay = o.weight_decay;
  info.beta1 = o.beta1;
  info.beta2 = o.beta2;
  info.eps = o.eps;
  info.params.clear();

  // The step count (float, as PyTorch keeps it), shared by all parameters.
  Value* step = g.AddInitializer("optimizer.step", Tensor(DType::kFloat32, {}));
  t.optimizer_step = step->name();
  Value* step1 = b.Op("Add", {step, b.Scalar(1.0, "optimizer.one")}, "optimizer.step_next");
  t.updates.push_back({step->name(), step1->name()});

  Value* wd = o.weight_decay != 0 ? b.Scalar(o.weight_decay, "optimizer.weight_decay") : nullptr;
  Value *bc1 = nullptr, *bc2_sqrt = nullptr, *b1 = nullptr, *b2 = nullptr, *omb1 = nullptr,
        *omb2 = nullptr;
  Value* eps = nullptr;
  if (o.kind != "sgd") {
    b1 = b.Scalar(o.beta1, "adam.beta1");
    b2 = b.Scalar(o.beta2, "adam.beta2");
    omb1 = b.Scalar(1.0 - o.beta1, "adam.one_minus_beta1");
    omb2 = b.Scalar(1.0 - o.beta2, "adam.one_minus_beta2");
    eps = b.Scalar(o.eps, "adam.eps");
    Value* one = b.Scalar(1.0, "adam.one");
    bc1 = b.Op("Sub", {one, b.Op("Pow", {b1, step1}, "adam.beta1_pow")}, "adam.bias_correction1");
    bc2_sqrt = b.Op(
        "Sqrt",
        {b.Op("Sub", {one, b.Op("Pow", {b2, step1}, "adam.beta2_pow")}, "adam.bias_correction2")},
        "adam.bias_correction2_sqrt");
  }
  Value* momentum = o.momentum != 0 ? b.Scalar(o.momentum, "sgd.momentum") : nullptr;
  Value* one_minus_damp =
      o.momentum != 0 ? b.Scalar(1.0 - o.dampening, "sgd.one_minus_dampening") : nullptr;
  Value* first_step = nullptr;
  if (o.momentum != 0 &&
      o.dampening != 0)  // PyTorch's buffer starts at the first gradient, undamped
    first_step = b.Op("Equal", {step, b.Scalar(0.0, "sgd.zero")}, "sgd.first_step");

  for (const std::string& name : t.trainable) {
    Value* p = g.FindValue(name);
    Value* grad_out = g.FindValue(t.gradients.at(name));
    // Behind autodiff's exposing Identity (data-parallel's AllReduce output
    // is read as it is).
    Node* exposing = ProducerIf(grad_out, "Identity");
    Value* grad = exposing ? exposing->input(0) : grad_out;
    Value* gr = grad;
    if (wd && o.kind != "adamw")
      gr = b.Op("Add", {gr, b.Op("Mul", {p, wd}, name + ".decay")}, name + ".grad_decayed");
    Value* p_new = nullptr;
    OptimizerInfo::Param described{name, grad->name(), "", "", ""};
    if (o.kind == "sgd") {
      Value* dir = gr;
      if (momentum) {
        Value* buf = b.ZerosLike(p, name + ".momentum_buffer");
        Value* next = b.Op("Add",
                           {b.Op("Mul", {buf, momentum}, name + ".buf_m"),
                            b.Op("Mul", {gr, one_minus_damp}, name + ".buf_g")},
                           name + ".buf_next");
        if (first_step) next = b.Op("Where", {first_step, gr, next}, name + ".buf_first");
        t.updates.push_back({buf->name(), next->name()});
        described.momentum_buffer = buf->name();
        dir = o.nesterov ? b.Op("Add", {gr, b.Op("Mul", {next, momentum}, name + ".nesterov")},
                                name + ".dir")
                         : next;
      }
      p_new = b.Op("Sub", {p, b.Op("Mul", {dir, lr}, name + ".delta")}, name + ".next");
    } else {
      Value* m = b.ZerosLike(p, name + ".exp_avg");
      Value* v = b.ZerosLike(p, name + ".exp_avg_sq");
      Value* m_next = b.Op(
          "Add", {b.Op("Mul", {m, b1}, name + ".m_b1"), b.Op("Mul", {gr, omb1}, name + ".g_b1")},
          name + ".exp_avg_next");
      Value* v_next =
          b.Op("Add",
               {b.Op("Mul", {v, b2}, name + ".v_b2"),
                b.Op("Mul", {b.Op("Mul", {gr, gr}, name + ".g2"), omb2}, name + ".g2_b2")},
               name + ".exp_avg_sq_next");
      t.updates.push_back({m->name(), m_next->name()});
      t.updates.push_back({v->name(), v_next->name()});
      described.exp_avg = m->name();
      described.exp_avg_sq = v->name();
      Value* base = p;
      if (wd && o.kind == "adamw")  // decoupled: p *= 1 - lr * wd
        base = b.Op(
            "Mul",
            {p, b.Op("Sub", {b.Scalar(1.0, name + ".one"), b.Op("Mul", {lr, wd}, name + ".lr_wd")},
                     name + ".decay_factor")},
            name + ".decayed");
      // PyTorch: denom = sqrt(v) / sqrt(bc2) + eps; p -= (lr / bc1) * m / denom
      Value* denom = b.Op(
          "Add",
          {b.Op("Div", {b.Op("Sqrt", {v_next}, name + ".v_sqrt"), bc2_sqrt}, name + ".v_hat"), eps},
          name + ".denom");
      Value* step_size = b.Op("Div", {lr, bc1}, name + ".step_size");
      p_new = b.Op("Sub",
                   {base, b.Op("Mul", {b.Op("Div", {m_next, denom}, name + ".ratio"), step_size},
                               name + ".delta")},
                   name + ".next");
    }
    t.updates.push_back({name, p_new->name()});
    info.params.push_back(described);
  }
  // A skipped step (non-finite gradients under loss scaling) leaves the
  // parameters, moments and step count as they were.
  if (!t.skip_step.empty()) {
    Value* skip = g.FindValue(t.skip_step);
    for (size_t i = first_own_update; i < t.updates.size(); ++i) {
      auto& [state, update] = t.updates[i];
      Value* kept =
          b.Op("Where", {skip, g.FindValue(state), g.FindValue(update)}, state + ".kept_or_next");
      update = kept->name();
    }
  }
  // The update runs on FP32 master weights whatever precision the gradients
  // arrive in: paint-precision keeps this decision.
  for (Node* n : g.nodes()) {
    if (forward.count(n)) continue;
    n->set_precision(DType::kFloat32, "optimizer: FP32 master weights and state");
  }
  // BatchNormalization running statistics (training mode) are state too.
  for (Node* n : g.nodes()) {
    if (n->op_type() != "BatchNormalization" || n->GetInt("training_mode", 0) == 0) continue;
    for (size_t k = 1; k < 3 && k < n->num_outputs(); ++k) {  // outputs 1, 2 update inputs 3, 4
      Value* stat = n->input(k + 2);
      if (stat && stat->has_initializer())
        t.updates.push_back({stat->name(), n->output(k)->name()});
    }
  }
  // The step's outputs: the loss, then every updated piece of state.
  Value* loss = g.FindValue(t.loss);
  g.ClearOutputs();
  g.AddOutput(loss);
  for (auto& [state, update] : t.updates) {
    Value* u = g.FindValue(update);
    if (u->is_graph_output()) {  // one value may not be two outputs
      Node* id = g.AddNode("Identity", {u}, {state + ".updated"});
      id->set_precision(DType::kFloat32, "optimizer: FP32 master weights and state");
      u = id->output(0);
      update = u->name();
    }
    g.AddOutput(u);
  }
  t.gradients.clear();  // consumed; the exposing Identities are now dead
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
