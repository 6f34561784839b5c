#include "passes/insert_casts.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "compiler/const_eval.h"
#include "compiler/shape_inference.h"
#include "passes/op_classes.h"
#include "passes/precision_policy.h"

namespace amp {
namespace {

std::optional<DType> Target(const Node& n) {
  if (!n.precision().decided()) return std::nullopt;
  return n.precision().compute;
}

// Outputs whose type follows the node's compute type (not statistics).
bool FollowsComputeType(const Node& n, size_t out) {
  if (n.op_type() == "BatchNormalization" || n.op_type() == "LayerNormalization") return out == 0;
  return true;
}

class Inserter {
 public:
  explicit Inserter(Model& m) : model_(m), g_(*m.graph) {}

  StatusOr<bool> Run() {
    std::unordered_map<const Value*, DType> original;
    for (Value* v : g_.outputs()) original[v] = v->dtype();
    for (Node* n : g_.nodes()) {
      auto want = Target(*n);
      if (!want || n->op_type() == "Cast") continue;
      for (size_t i = 0; i < n->num_inputs(); ++i) {
        Value* v = n->input(i);
        if (!v || !(v->dtype() == DType::kFloat32 || IsHalf(v->dtype()))) continue;
        if (IsShapeLikeInput(n->op_type(), static_cast<int>(i))) continue;
        DType slot_type = (IsHalf(*want) && KeepsFp32Input(n->op_type(), static_cast<int>(i)))
                              ? DType::kFloat32
                              : *want;
        if (v->dtype() == slot_type) continue;
        AMP_ASSIGN_OR_RETURN(Value * converted, Convert(v, slot_type));
        n->SetInput(i, converted);
        changed_ = true;
      }
      for (size_t k = 0; k < n->num_outputs(); ++k) {
        Value* out = n->output(k);
        if (!FollowsComputeType(*n, k) ||
            !(out->dtype() == DType::kFloat32 || IsHalf(out->dtype())))
          continue;
        if (out->dtype() != *want) {
          out->mutable_type().dtype = *want;
          changed_ = true;
        }
      }
    }
    // Graph outputs keep their declared type, and their name.
    for (size_t i = 0; i < g_.outputs().size(); ++i) {
      Value* v = g_.outputs()[i];
      DType want = original[v];
      if (v->dtype() == want) continue;
      std::string name = v->name();
      AMP_RETURN_IF_ERROR(
          g_.RenameValue(v, g_.UniqueName(StrCat(name, "_", PrecisionName(v->dtype())))));
      Node* cast = g_.AddNode("Cast", {v}, {name});
      AMP_CHECK(cast->output(0)->name() == name);
      cast->SetAttr("to", Attribute::Int(static_cast<int64_t>(want)));
      cast->set_name(StrCat("amp_cast_", name));
      cast->set_origin(NodeOrigin::kInsertedCast);
      cast->output(0)->set_type({want, v->type().shape});
      g_.SetOutput(i, cast->output(0));
      changed_ = true;
    }
    AMP_RETURN_IF_ERROR(g_.TopologicalSort());
    AMP_RETURN_IF_ERROR(RunShapeInference(model_));
    return changed_;
  }

 private:
  // `v` as `to`: shared per (value, type); constants converted now.
  StatusOr<Value*> Convert(Value* v, DType to) {
    auto key = std::make_pair(v, to);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    std::string name = g_.UniqueName(StrCat(v->name(), "_", PrecisionName(to)));
    Node* producer = v->producer();
    Value* out;
    if (producer && producer->op_type() == "Constant" && producer->num_inputs() == 0) {
      AMP_ASSIGN_OR_RETURN(Tensor t, ConstantNodeValue(*producer));
      Tensor converted(to, t.dims());
      for (int64_t i = 0; i < t.num_elements(); ++i) converted.SetDouble(i, t.GetDouble(i));
      Node* c = g_.AddNode("Constant", {}, {name});
      c->SetAttr("value", Attribute::FromTensor(converted));
      c->set_origin(NodeOrigin::kConvertedConstant);
      out = c->output(0);
      out->set_type({to, ShapeFromDims(t.dims())});
    } else {
      Node* c = g_.AddNode("Cast", {v}, {name});
      c->SetAttr("to", Attribute::Int(static_cast<int64_t>(to)));
      c->set_name(StrCat("amp_cast_", v->name()));
      c->set_origin(NodeOrigin::kInsertedCast);
      out = c->output(0);
      out->set_type({to, v->type().shape});
      // A parameter's half copy: the step's description records it.
      TrainingInfo& t = model_.training;
      if (IsHalf(to) && v->has_initializer() &&
          std::find(t.trainable.begin(), t.trainable.end(), v->name()) != t.trainable.end())
        t.half_copies[v->name()] = out->name();
    }
    cache_[key] = out;
    return out;
  }

  Model& model_;
  Graph& g_;
  bool changed_ = false;
  std::map<std::pair<Value*, DType>, Value*> cache_;
};

}  // namespace

StatusOr<bool> InsertCasts::Run(Model& model) { return Inserter(model).Run(); }

}  // namespace amp
