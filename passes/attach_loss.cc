#include "passes/attach_loss.h"

#include "compiler/shape_inference.h"

namespace amp {
namespace {

// Mean over every element (ReduceMean with no axes keeps nothing).
Value* MeanAll(Graph& g, Value* x, const std::string& name) {
  Node* r = g.AddNode("ReduceMean", {x}, {name});
  r->SetAttr("keepdims", Attribute::Int(0));
  return r->output(0);
}

}  // namespace

StatusOr<bool> AttachLoss::Run(Model& model) {
  Graph& g = *model.graph;
  if (model.training.active()) return false;  // already a training model
  Value* out = nullptr;
  if (options_.output.empty()) {
    if (g.outputs().size() != 1)
      return InvalidArgument("the model has ", g.outputs().size(),
                             " outputs; name the one the loss applies to with --output");
    out = g.outputs()[0];
  } else {
    out = g.FindValue(options_.output);
    if (!out || !out->is_graph_output())
      return InvalidArgument("--output '", options_.output, "' is not an output of the model");
  }
  if (!IsFloat(out->dtype()))
    return InvalidArgument("output '", out->name(), "' is not a float tensor");
  const auto& shape = out->type().shape;
  Value* loss = nullptr;
  if (options_.kind == "model") {
    if (!shape || !shape->empty())
      return InvalidArgument("--loss model needs a scalar output, but '", out->name(), "' is ",
                             out->type().ToString());
    loss = out;
  } else {
    if (!shape) return InvalidArgument("output '", out->name(), "' has an unknown rank");
    if (g.FindValue(options_.label))
      return InvalidArgument("the label name '", options_.label, "' is already used in the model");
    TensorType label_type;
    if (options_.kind == "cross_entropy") {
      if (shape->size() < 2)
        return InvalidArgument("cross_entropy needs logits of rank >= 2 ([N, C, ...]), but '",
                               out->name(), "' is ", out->type().ToString());
      if (!IsInteger(options_.label_type))
        return InvalidArgument("cross_entropy labels must be int32 or int64 class indices");
      Shape label_shape{(*shape)[0]};
      label_shape.insert(label_shape.end(), shape->begin() + 2, shape->end());
      label_type = {options_.label_type, label_shape};
    } else if (options_.kind == "mse" || options_.kind == "bce_with_logits" ||
               options_.kind == "l1") {
      label_type = {out->dtype(), *shape};
    } else {
      return InvalidArgument("unknown loss '", options_.kind,
                             "' (cross_entropy, mse, bce_with_logits, l1, or model for a model "
                             "that already outputs its loss)");
    }
    Value* label = g.AddInput(options_.label, label_type);
    if (options_.kind == "cross_entropy") {
      Node* n = g.AddNode("SoftmaxCrossEntropyLoss", {out, label}, {"loss"});
      n->SetAttr("reduction", Attribute::String("mean"));
      n->set_name("amp_loss");
      loss = n->output(0);
    } else if (options_.kind == "mse" || options_.kind == "l1") {
      Value* diff = g.AddNode("Sub", {out, label}, {"loss_diff"})->output(0);
      Value* per = options_.kind == "mse" ? g.AddNode("Mul", {diff, diff}, {"loss_sq"})->output(0)
                                          : g.AddNode("Abs", {diff}, {"loss_abs"})->output(0);
      loss = MeanAll(g, per, "loss");
    } else {  // bce_with_logits, stable form: max(x, 0) - x * t + log(1 + exp(-|x|))
      Value* relu = g.AddNode("Relu", {out}, {"bce_relu"})->output(0);
      Value* xt = g.AddNode("Mul", {out, label}, {"bce_xt"})->output(0);
      Value* neg_abs =
          g.AddNode("Neg", {g.AddNode("Abs", {out}, {"bce_abs"})->output(0)}, {"bce_nabs"})
              ->output(0);
      Value* one = g.AddScalar("bce_one", out->dtype(), 1.0);
      Value* softplus =
          g.AddNode("Log",
                    {g.AddNode("Add", {one, g.AddNode("Exp", {neg_abs}, {"bce_exp"})->output(0)},
                               {"bce_1pexp"})
                         ->output(0)},
                    {"bce_log"})
              ->output(0);
      Value* per =
          g.AddNode("Add", {g.AddNode("Sub", {relu, xt}, {"bce_lin"})->output(0), softplus},
                    {"bce_per"})
              ->output(0);
      loss = MeanAll(g, per, "loss");
    }
  }
  int64_t position = 0;
  for (Node* n : g.nodes()) {
    if (n->op_type() != "Dropout") continue;
    if (!n->HasAttr("seed")) n->SetAttr("seed", Attribute::Int(options_.seed + position));
    ++position;
  }
  // The step's outputs: the loss first (the optimizer adds state updates).
  for (const Value* v : g.outputs())
    model.training.forward_outputs.push_back({v->name(), v->dtype()});
  g.ClearOutputs();
  g.AddOutput(loss);
  model.training.loss = loss->name();
  AMP_RETURN_IF_ERROR(g.TopologicalSort());
  AMP_RETURN_IF_ERROR(RunShapeInference(model));
  return true;
}

}  // namespace amp
