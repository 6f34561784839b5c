#include "compiler/shape_inference.h"

#include <deque>
#include <unordered_map>
#include <unordered_set>

#include "compiler/attr_schema.h"
#include "compiler/const_eval.h"
#include "ops/op_def.h"

namespace amp {
namespace {

// The largest float result the inference evaluates at compile time.
constexpr int64_t kMaxFloatEvalElements = 4096;

class Driver {
 public:
  enum class Mode { kInfer, kCheck, kConstants };
  Driver(const Model& model, Mode mode)
      : model_(model), check_only_(mode != Mode::kInfer), mode_(mode) {}

  const std::unordered_map<const Value*, const Tensor*>& constants() const { return constants_; }

  Status Run() {
    const Graph& g = *model_.graph;
    // In constants mode float initializers (parameters) and training state
    // (updated every step, whatever its type) are not compile-time values.
    std::unordered_set<std::string> state;
    for (const auto& [name, update] : model_.training.updates) state.insert(name);
    for (Value* v : g.initializers())
      if (mode_ != Mode::kConstants || (!IsFloat(v->dtype()) && !state.count(v->name())))
        constants_[v] = v->initializer();
    for (Node* n : g.nodes()) AMP_RETURN_IF_ERROR(InferNode(*n));
    return Status::Ok();
  }

 private:
  Status InferNode(Node& node) {
    const OpDef* def = FindOp(node.domain(), node.op_type());
    if (!def) {
      if (!node.domain().empty())
        return Unimplemented(node.Describe(), ": op '", node.op_type(), "' of domain '",
                             node.domain(),
                             "' is not supported (amp supports the default ONNX domain)");
      return Unimplemented(node.Describe(), ": op '", node.op_type(),
                           "' is not supported by amp; see `amp-compile --list-ops` for the ops it "
                           "supports");
    }
    int n_in = static_cast<int>(node.num_inputs());
    int n_out = static_cast<int>(node.num_outputs());
    if (n_in < def->arity.min_inputs ||
        (def->arity.max_inputs >= 0 && n_in > def->arity.max_inputs))
      return InvalidArgument(
          node.Describe(), " has ", n_in, " inputs; ", node.op_type(), " takes ",
          def->arity.min_inputs,
          def->arity.max_inputs < 0 ? " or more" : StrCat(" to ", def->arity.max_inputs));
    if (n_out < def->arity.min_outputs ||
        (def->arity.max_outputs >= 0 && n_out > def->arity.max_outputs))
      return InvalidArgument(
          node.Describe(), " has ", n_out, " outputs; ", node.op_type(), " gives ",
          def->arity.min_outputs,
          def->arity.max_outputs < 0 ? " or more" : StrCat(" to ", def->arity.max_outputs));
    for (int i = 0; i < def->arity.min_inputs; ++i)
      if (!node.input(i))
        return InvalidArgument(node.Describe(), ": required input ", i, " is missing");
    for (int i = 0; i < n_in; ++i) {
      Value* in = node.input(i);
      if (in && in->dtype() == DType::kUndefined)
        return InvalidArgument(node.Describe(), ": input '", in->name(), "' has no known type");
    }

    // Element types against the ONNX schema's type constraints.
    int64_t opset = model_.OpsetVersion(node.domain());
    if (node.domain().empty() || node.domain() == "ai.onnx") {
      if (const OpAttrSchema* spec = FindAttrSchema(node.domain(), node.op_type(), opset).schema) {
        for (int i = 0; i < n_in; ++i) {
          const Value* in = node.input(i);
          uint32_t allowed = spec->InputTypes(i);
          int bit = static_cast<int>(in ? in->dtype() : DType::kUndefined);
          if (!in || allowed == 0 || bit >= 32 || (allowed >> bit) & 1) continue;
          std::string names;
          for (int t = 1; t < 32; ++t)
            if ((allowed >> t) & 1 && IsSupportedDType(t))
              names += StrCat(names.empty() ? "" : ", ", DTypeName(static_cast<DType>(t)));
          return InvalidArgument(node.Describe(), ": input ", i, " ('", in->name(), "') is ",
                                 DTypeName(in->dtype()), ", but ", node.op_type(), "-",
                                 spec->since_version, " takes ",
                                 names.empty() ? "other types" : names, " there");
        }
      }
    }
    InferenceContext ctx(node, opset);
    for (Value* in : node.inputs()) {
      auto c = in ? constants_.find(in) : constants_.end();
      ctx.constants_.push_back(c == constants_.end() ? nullptr : c->second);
      auto s = in ? shape_values_.find(in) : shape_values_.end();
      ctx.shape_values_.push_back(s == shape_values_.end() ? nullptr : &s->second);
    }
    AMP_RETURN_IF_ERROR(def->infer(ctx));

    std::vector<TensorType> inferred(node.num_outputs());
    for (size_t i = 0; i < node.num_outputs(); ++i) {
      if (!ctx.outputs_[i])
        return Internal(node.Describe(), ": inference set no type for output ", i);
      AMP_ASSIGN_OR_RETURN(inferred[i], Merge(node, *node.output(i), *ctx.outputs_[i]));
    }
    if (!check_only_)
      for (size_t i = 0; i < node.num_outputs(); ++i) node.output(i)->set_type(inferred[i]);

    // Propagate shape data and constants.
    for (size_t i = 0; i < node.num_outputs(); ++i) {
      Value* out = node.output(i);
      if (ctx.output_constants_[i]) {
        constants_[out] = Keep(std::move(*ctx.output_constants_[i]));
      } else if (ctx.output_shape_values_[i]) {
        const auto& dims = *ctx.output_shape_values_[i];
        shape_values_[out] = dims;
        bool all_static = true;
        for (const Dim& d : dims) all_static &= d.is_static();
        // The shape value as a constant, when the value holds exactly those
        // dims (its element count checked first: a corrupt file can declare
        // a shape far too large to allocate).
        auto count =
            inferred[i].has_static_shape() ? StaticNumElements(*inferred[i].shape) : std::nullopt;
        if (all_static && IsInteger(inferred[i].dtype) && count &&
            *count == static_cast<int64_t>(dims.size())) {
          Tensor t(inferred[i].dtype, *StaticDims(*inferred[i].shape));
          {
            for (size_t k = 0; k < dims.size(); ++k)
              t.SetInt(static_cast<int64_t>(k), dims[k].value());
            constants_[out] = Keep(std::move(t));
          }
        }
      }
    }
    bool all_const = node.num_outputs() == 1 && !constants_.count(node.output(0));
    for (size_t i = 0; i < node.num_inputs() && all_const; ++i)
      all_const = !node.input(i) || ctx.constants_[i] != nullptr;
    // Shape arithmetic is what the evaluator is for: integer results, and
    // small float ones (a scale, a mask). A large float result (a transposed
    // weight) is left to run: evaluating it on every verification made a
    // 12-layer BERT compile in 10 s.
    if (all_const && CanEvaluate(node.op_type()) && inferred.size() == 1 &&
        (IsInteger(inferred[0].dtype) || inferred[0].dtype == DType::kBool ||
         (inferred[0].has_static_shape() &&
          StaticNumElements(*inferred[0].shape).value_or(kMaxFloatEvalElements + 1) <=
              kMaxFloatEvalElements))) {
      AMP_ASSIGN_OR_RETURN(auto result, EvaluateNode(node, ctx.constants_, inferred));
      if (result) {
        const Tensor& t = (*result)[0];
        if (IsInteger(t.dtype()) && t.dims().size() <= 1) {
          std::vector<Dim> dims;
          for (int64_t k = 0; k < t.num_elements(); ++k) dims.push_back(Dim(t.GetInt(k)));
          shape_values_[node.output(0)] = dims;
        }
        constants_[node.output(0)] = Keep(std::move((*result)[0]));
      }
    }
    return Status::Ok();
  }

  // Combines what the op says with what was recorded before.
  StatusOr<TensorType> Merge(const Node& node, const Value& out, const TensorType& inferred) {
    const TensorType& recorded = out.type();
    auto mismatch = [&]() {
      return InvalidArgument(node.Describe(), ": output '", out.name(), "' is recorded as ",
                             recorded.ToString(), " but the op gives ", inferred.ToString());
    };
    if (recorded.dtype != DType::kUndefined && recorded.dtype != inferred.dtype) return mismatch();
    TensorType merged = inferred;
    if (!recorded.shape) return merged;
    if (!inferred.shape) {
      if (check_only_) return merged;
      merged.shape = recorded.shape;
      return merged;
    }
    if (recorded.shape->size() != inferred.shape->size()) return mismatch();
    for (size_t k = 0; k < inferred.shape->size(); ++k) {
      const Dim& r = (*recorded.shape)[k];
      Dim& m = (*merged.shape)[k];
      if (r.is_static() && m.is_static() && r.value() != m.value()) return mismatch();
      if (!check_only_ && !m.is_static() && (r.is_static() || (m.is_unknown() && r.is_symbolic())))
        m = r;
    }
    return merged;
  }

  const Tensor* Keep(Tensor t) {
    owned_.push_back(std::move(t));
    return &owned_.back();
  }

  const Model& model_;
  bool check_only_;
  Mode mode_;
  std::unordered_map<const Value*, const Tensor*> constants_;
  std::unordered_map<const Value*, std::vector<Dim>> shape_values_;
  std::deque<Tensor> owned_;
};

}  // namespace

Status RunShapeInference(Model& model) { return Driver(model, Driver::Mode::kInfer).Run(); }

Status CheckTypes(const Model& model) { return Driver(model, Driver::Mode::kCheck).Run(); }

StatusOr<std::unordered_map<const Value*, Tensor>> CompileTimeConstants(const Model& model) {
  Driver driver(model, Driver::Mode::kConstants);
  AMP_RETURN_IF_ERROR(driver.Run());
  std::unordered_map<const Value*, Tensor> out;
  for (const auto& [v, t] : driver.constants())
    if (!v->has_initializer()) out.emplace(v, *t);
  return out;
}

}  // namespace amp
