#include "passes/loss_scaling.h"

#include <cmath>
#include <unordered_set>

#include "compiler/shape_inference.h"

namespace amp {

StatusOr<bool> LossScaling::Run(Model& model) {
  Graph& g = *model.graph;
  TrainingInfo& t = model.training;
  if (t.gradients.empty() || t.grad_seed.empty())
    return InvalidArgument("loss scaling needs gradients: run attach-loss and autodiff first");
  if (t.has_optimizer) return InvalidArgument("loss scaling must run before the optimizer");
  if (!t.skip_step.empty()) return false;
  const LossScaleOptions& o = options_;
  if (!(o.init_scale > 0) || !std::isfinite(o.init_scale) || !(o.growth_factor >= 1) ||
      !(o.backoff_factor > 0) || !(o.backoff_factor <= 1) || o.growth_interval < 1 ||
      !std::isfinite(o.growth_factor) || !(o.min_scale >= 0) || !(o.max_scale >= 0) ||
      !std::isfinite(o.min_scale) || !std::isfinite(o.max_scale))
    return InvalidArgument(
        "loss scale options out of range (scale > 0, growth factor >= 1, 0 < backoff <= 1, "
        "growth interval >= 1, min and max scale finite and >= 0)");
  std::vector<Node*> before = g.nodes();
  std::unordered_set<const Node*> existing(before.begin(), before.end());

  // S: state for a dynamic scale, a constant for a static one.
  Value* scale;
  if (o.dynamic) {
    Tensor s(DType::kFloat32, {});
    s.SetDouble(0, o.init_scale);
    scale = g.AddInitializer("loss_scale", s);
  } else {
    scale = g.AddScalar("loss_scale", DType::kFloat32, o.init_scale);
  }
  // Backward starts from S: every gradient is linear in the seed.
  Value* seed = g.FindValue(t.grad_seed);
  g.ReplaceAllUsesWith(seed, scale);
  g.EraseNode(seed->producer());
  t.grad_seed = scale->name();

  t.loss_scale = scale->name();
  Value* inv = g.AddNode("Reciprocal", {scale}, {"loss_scale.inverse"})->output(0);
  t.inverse_scale = inv->name();
  Value* zero = g.AddScalar("loss_scale.zero", DType::kFloat32, 0.0);
  std::vector<Value*> probes;
  for (auto& [param, grad_name] : t.gradients) {
    Node* expose = g.FindValue(grad_name)->producer();  // Identity exposing the gradient
    Value* scaled = expose->input(0);
    Value* unscaled = g.AddNode("Mul", {scaled, inv}, {param + "_grad_unscaled"})->output(0);
    t.unscaled[param] = unscaled->name();
    expose->SetInput(0, unscaled);
    // sum(g * 0) is 0 when g is finite and NaN otherwise: no overflow possible.
    Value* probe = g.AddNode("Mul", {unscaled, zero}, {param + "_grad_probe"})->output(0);
    Node* r = g.AddNode("ReduceSum", {probe}, {param + "_grad_probe_sum"});
    r->SetAttr("keepdims", Attribute::Int(0));
    probes.push_back(r->output(0));
  }
  Value* total =
      probes.size() == 1 ? probes[0] : g.AddNode("Sum", probes, {"grads_probe_total"})->output(0);
  Value* found_inf = g.AddNode("IsNaN", {total}, {"found_inf"})->output(0);
  t.skip_step = found_inf->name();

  if (o.dynamic) {
    Value* tracker = g.AddInitializer("loss_scale.growth_tracker", Tensor(DType::kInt64, {}));
    t.growth_tracker = tracker->name();
    Value* one = g.AddScalar("loss_scale.one", DType::kInt64, 1);
    Value* zero_i = g.AddScalar("loss_scale.zero_steps", DType::kInt64, 0);
    Value* next = g.AddNode("Add", {tracker, one}, {"loss_scale.clean_steps"})->output(0);
    Value* grow =
        g.AddNode("Equal",
                  {next, g.AddScalar("loss_scale.interval", DType::kInt64, o.growth_interval)},
                  {"loss_scale.grow"})
            ->output(0);
    Value* tracker_next =
        g.AddNode("Where",
                  {found_inf, zero_i,
                   g.AddNode("Where", {grow, zero_i, next}, {"loss_scale.tracker_ok"})->output(0)},
                  {"loss_scale.growth_tracker_next"})
            ->output(0);
    Value* grown =
        g.AddNode("Mul",
                  {scale, g.AddScalar("loss_scale.growth", DType::kFloat32, o.growth_factor)},
                  {"loss_scale.grown"})
            ->output(0);
    Value* grown_ok =
        g.AddNode("Where",
                  {g.AddNode("IsInf", {grown}, {"loss_scale.grown_inf"})->output(0), scale, grown},
                  {"loss_scale.grown_finite"})
            ->output(0);
    Value* backed =
        g.AddNode("Mul",
                  {scale, g.AddScalar("loss_scale.backoff", DType::kFloat32, o.backoff_factor)},
                  {"loss_scale.backed_off"})
            ->output(0);
    Value* scale_next =
        g.AddNode(
             "Where",
             {found_inf, backed,
              g.AddNode("Where", {grow, grown_ok, scale}, {"loss_scale.kept_or_grown"})->output(0)},
             {"loss_scale.next"})
            ->output(0);
    if (o.min_scale > 0)
      scale_next =
          g.AddNode("Max",
                    {scale_next, g.AddScalar("loss_scale.min", DType::kFloat32, o.min_scale)},
                    {"loss_scale.clamped_min"})
              ->output(0);
    if (o.max_scale > 0)
      scale_next =
          g.AddNode("Min",
                    {scale_next, g.AddScalar("loss_scale.max", DType::kFloat32, o.max_scale)},
                    {"loss_scale.clamped_max"})
              ->output(0);
    t.updates.push_back({scale->name(), scale_next->name()});
    t.updates.push_back({tracker->name(), tracker_next->name()});
    t.loss_scale_rule = {o.growth_factor, o.backoff_factor, o.growth_interval, o.min_scale,
                         o.max_scale};
  }
  // Scaling, unscaling and the check run in FP32.
  for (Node* n : g.nodes()) {
    if (existing.count(n)) continue;
    n->set_precision(DType::kFloat32, "loss scaling: FP32");
  }
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
