#include "runtime/session.h"

#include <cmath>
#include <cstring>
#include <unordered_set>

#include "compiler/loader.h"
#include "compiler/shape_inference.h"
#include "passes/pipelines.h"
#include "runtime/memory_plan.h"

namespace amp {
namespace {

std::string DimsToString(const std::vector<int64_t>& dims) {
  return ShapeToString(ShapeFromDims(dims));
}

}  // namespace

StatusOr<std::unique_ptr<Session>> Session::Open(const std::string& path,
                                                 const SessionOptions& options) {
  std::unique_ptr<Session> s(new Session());
  s->path_ = path;
  s->options_ = options;
  AMP_ASSIGN_OR_RETURN(s->backend_, CreateBackend(options.device));
  AMP_ASSIGN_OR_RETURN(Model m, LoadModel(path, options.mode));
  s->base_ = std::make_unique<Model>(std::move(m));
  for (const Value* v : s->base_->graph->initializers()) {
    const Tensor& t = *v->initializer();
    if (DTypeSize(t.dtype()) == 0)
      return Unimplemented("initializer '", v->name(),
                           "' has an element type the runtime cannot hold");
    Buffer b;
    b.ref.dtype = t.dtype();
    b.ref.dims = t.dims();
    AMP_ASSIGN_OR_RETURN(b.ref.data, s->backend_->Allocate(t.nbytes()));
    AMP_RETURN_IF_ERROR(s->backend_->CopyToDevice(b.ref.data, t.data(), t.nbytes()));
    s->memory_.persistent_bytes += t.nbytes();
    s->persistent_[v->name()] = std::move(b);
  }
  return s;
}

Session::~Session() {
  if (!backend_) return;
  for (auto& [name, b] : persistent_) backend_->Free(b.ref.data);
  for (auto& [name, b] : input_buffers_) backend_->Free(b.ref.data);
  for (void* p : owned_) backend_->Free(p);
  if (arena_) backend_->Free(arena_);
}

Status Session::SetInput(const std::string& name, const Tensor& value) {
  const Value* in = nullptr;
  for (const Value* v : base_->graph->inputs())
    if (v->name() == name) in = v;
  if (!in) {
    std::string names;
    for (const Value* v : base_->graph->inputs()) {
      if (!names.empty()) names.append(", ");
      names.append(v->name());
    }
    return InvalidArgument("the model has no input '", name, "' (its inputs: ", names, ")");
  }
  if (value.dtype() != in->dtype())
    return InvalidArgument("input '", name, "' is ", DTypeName(value.dtype()),
                           "; the model expects ", DTypeName(in->dtype()));
  if (in->type().shape) {
    const Shape& shape = *in->type().shape;
    if (shape.size() != value.dims().size())
      return InvalidArgument("input '", name, "' has shape ", DimsToString(value.dims()),
                             "; the model expects ", in->type().ToString());
    for (size_t i = 0; i < shape.size(); ++i)
      if (shape[i].is_static() && shape[i].value() != value.dims()[i])
        return InvalidArgument("input '", name, "' has shape ", DimsToString(value.dims()),
                               "; the model expects ", in->type().ToString());
  }
  pending_[name] = value;
  return Status::Ok();
}

Status Session::Copy(const TensorRef& from, TensorRef& to) {
  return backend_->CopyOnDevice(to.data, from.data, from.nbytes());
}

StatusOr<Model> Session::BuildSpecialized(const std::map<std::string, int64_t>& bindings) {
  AMP_ASSIGN_OR_RETURN(Model m, LoadModel(path_, options_.mode));
  for (const auto& [name, value] : frozen_) {
    Value* v = m.graph->FindValue(name);
    if (v && v->is_graph_input()) m.graph->FreezeInput(v, value);
  }
  // Unknown (unnamed) input dims take the bound value directly.
  for (Value* v : m.graph->inputs()) {
    if (!v->type().shape) {
      v->mutable_type().shape = ShapeFromDims(pending_[v->name()].dims());
      continue;
    }
    Shape& shape = *v->mutable_type().shape;
    for (size_t i = 0; i < shape.size(); ++i)
      if (shape[i].is_unknown()) shape[i] = Dim(pending_[v->name()].dims()[i]);
  }
  PassPipeline pipeline = pipelines::Specialize({bindings, options_.fuse_optimizer});
  AMP_RETURN_IF_ERROR(pipeline.Run(m).status());
  AMP_RETURN_IF_ERROR(InferShapes(m));
  // Every value must now have a static shape, and every node a kernel.
  for (const Node* n : m.graph->nodes()) {
    AMP_RETURN_IF_ERROR(backend_->Supports(*n));
    for (const Value* out : n->outputs())
      if (out && (!out->type().has_static_shape() || DTypeSize(out->dtype()) == 0))
        return Unimplemented(n->Describe(), ": output '", out->name(), "' is ",
                             out->type().ToString(),
                             "; the runtime needs a static shape for every value (it depends "
                             "on data, or on an input dim that was not bound)");
  }
  return m;
}

Status Session::Specialize() {
  // Bind every symbolic input dim to the bound inputs' dims.
  std::map<std::string, int64_t> bindings;
  for (const Value* v : base_->graph->inputs()) {
    auto it = pending_.find(v->name());
    if (it == pending_.end())
      return InvalidArgument("input '", v->name(), "' (", v->type().ToString(),
                             ") is not bound; bind every input before Run");
    if (!v->type().shape) continue;
    const Shape& shape = *v->type().shape;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (!shape[i].is_symbolic()) continue;
      int64_t d = it->second.dims()[i];
      auto [pos, fresh] = bindings.emplace(shape[i].symbol(), d);
      if (!fresh && pos->second != d)
        return InvalidArgument("dim '", shape[i].symbol(), "' is ", pos->second,
                               " in one input and ", d, " in input '", v->name(), "'");
    }
  }
  frozen_.clear();
  auto built = BuildSpecialized(bindings);
  if (!built.ok() && built.status().code() == StatusCode::kUnimplemented &&
      options_.freeze_shape_inputs) {
    // Shapes that only the inputs' values decide: freeze the integer inputs.
    for (const auto& [name, t] : pending_)
      if (IsInteger(t.dtype())) frozen_[name] = t;
    if (!frozen_.empty()) built = BuildSpecialized(bindings);
  }
  if (!built.ok()) return built.status();
  spec_ = std::make_unique<Model>(std::move(*built));
  Graph& g = *spec_->graph;
  std::vector<Node*> nodes = g.nodes();

  // Release the previous specialization.
  for (void* p : owned_) backend_->Free(p);
  owned_.clear();
  if (arena_) backend_->Free(arena_);
  arena_ = nullptr;
  for (auto& [name, b] : input_buffers_) backend_->Free(b.ref.data);
  input_buffers_.clear();
  refs_.clear();
  program_.clear();
  updates_.clear();
  memory_.arena_bytes = memory_.unshared_bytes = memory_.input_bytes = 0;

  auto ref_of = [](const Value* v) {
    TensorRef r;
    r.dtype = v->dtype();
    r.dims = *StaticDims(*v->type().shape);
    return r;
  };
  // Inputs.
  for (const Value* v : g.inputs()) {
    Buffer b;
    b.ref = ref_of(v);
    AMP_ASSIGN_OR_RETURN(b.ref.data, backend_->Allocate(b.ref.nbytes()));
    memory_.input_bytes += b.ref.nbytes();
    refs_[v->name()] = b.ref;
    input_buffers_[v->name()] = b;
  }
  // Initializers: the persistent buffers (folding may have made new ones).
  for (const Value* v : g.initializers()) {
    auto it = persistent_.find(v->name());
    if (it != persistent_.end() && it->second.ref.nbytes() == v->initializer()->nbytes()) {
      refs_[v->name()] = it->second.ref;
      continue;
    }
    TensorRef r;
    r.dtype = v->dtype();
    r.dims = v->initializer()->dims();
    AMP_ASSIGN_OR_RETURN(r.data, backend_->Allocate(r.nbytes()));
    owned_.push_back(r.data);
    AMP_RETURN_IF_ERROR(backend_->CopyToDevice(r.data, v->initializer()->data(), r.nbytes()));
    refs_[v->name()] = r;
  }
  // Constant nodes: computed once, here.
  std::unordered_set<const Node*> constant_nodes;
  for (const Node* n : nodes) {
    if (n->op_type() != "Constant" || !n->domain().empty()) continue;
    constant_nodes.insert(n);
    TensorRef r = ref_of(n->output(0));
    AMP_ASSIGN_OR_RETURN(r.data, backend_->Allocate(r.nbytes()));
    owned_.push_back(r.data);
    refs_[n->output(0)->name()] = r;
  }
  // Intermediates: the arena.
  std::unordered_set<const Value*> keep(g.outputs().begin(), g.outputs().end());
  std::vector<std::string> extra = options_.extra_outputs;
  if (!spec_->training.skip_step.empty()) extra.push_back(spec_->training.skip_step);
  if (!spec_->training.loss.empty()) extra.push_back(spec_->training.loss);
  for (const std::string& name : extra)
    if (const Value* v = g.FindValue(name)) keep.insert(v);
  std::vector<const Node*> order;
  for (const Node* n : nodes)
    if (!constant_nodes.count(n)) order.push_back(n);
  auto in_arena = [&](const Value* v) { return !refs_.count(v->name()); };
  MemoryPlan plan = PlanMemory(order, in_arena, keep);
  AMP_ASSIGN_OR_RETURN(arena_, backend_->Allocate(plan.arena_bytes));
  if (options_.poison) {
    std::vector<uint8_t> poison(plan.arena_bytes, 0xff);
    AMP_RETURN_IF_ERROR(backend_->CopyToDevice(arena_, poison.data(), poison.size()));
  }
  memory_.arena_bytes = plan.arena_bytes;
  memory_.unshared_bytes = plan.unshared_bytes;
  for (const auto& [v, offset] : plan.offsets) {
    TensorRef r = ref_of(v);
    r.data = static_cast<uint8_t*>(arena_) + offset;
    refs_[v->name()] = r;
  }
  // The program: pointers into refs_ (stable: no insertion after this point).
  auto build = [&](const Node* n) {
    Step s{n, {}, {}};
    for (const Value* in : n->inputs()) s.in.push_back(in ? &refs_.at(in->name()) : nullptr);
    for (const Value* out : n->outputs())
      s.out.push_back(out && (!out->uses().empty() || keep.count(out) || constant_nodes.count(n))
                          ? &refs_.at(out->name())
                          : nullptr);
    return s;
  };
  for (const Node* n : nodes) {
    if (!constant_nodes.count(n)) continue;
    Step s = build(n);
    AMP_RETURN_IF_ERROR(backend_->Run(*n, s.in, s.out, 0));
  }
  for (const Node* n : order) program_.push_back(build(n));
  memory_.nodes = program_.size();
  // Optional outputs nobody reads still get memory (kernels may write them).
  for (Step& s : program_)
    for (size_t i = 0; i < s.out.size(); ++i)
      if (!s.out[i] && s.node->output(i)) s.out[i] = &refs_.at(s.node->output(i)->name());
  for (const auto& [state, update] : spec_->training.updates) {
    auto st = persistent_.find(state);
    if (st == persistent_.end() || !refs_.count(update)) continue;
    const TensorRef& u = refs_.at(update);
    if (u.nbytes() != st->second.ref.nbytes() || u.dtype != st->second.ref.dtype)
      return Internal("update '", update, "' does not match state '", state, "'");
    updates_.emplace_back(&st->second.ref, &u);
  }
  spec_shapes_.clear();
  for (const auto& [name, t] : pending_) spec_shapes_[name] = t.dims();
  return Status::Ok();
}

Status Session::Run() {
  bool same = spec_ != nullptr && spec_shapes_.size() == pending_.size();
  if (same)
    for (const auto& [name, t] : pending_)
      if (spec_shapes_[name] != t.dims()) same = false;
  for (const auto& [name, value] : frozen_)  // frozen values are part of the graph
    if (same && std::memcmp(value.data(), pending_[name].data(), value.nbytes()) != 0) same = false;
  if (!same) AMP_RETURN_IF_ERROR(Specialize());
  for (const auto& [name, t] : pending_) {
    auto buffer = input_buffers_.find(name);
    if (buffer == input_buffers_.end()) continue;  // frozen into a constant
    TensorRef& r = buffer->second.ref;
    AMP_RETURN_IF_ERROR(backend_->CopyToDevice(r.data, t.data(), t.nbytes()));
  }
  for (Step& s : program_) {
    Status st = backend_->Run(*s.node, s.in, s.out, static_cast<uint64_t>(step_));
    if (!st.ok()) return st;
  }
  guard_skipped_ = false;
  if (Guarded()) {
    AMP_RETURN_IF_ERROR(backend_->Synchronize());
    AMP_ASSIGN_OR_RETURN(std::string bad, FirstNonFinite());
    if (!bad.empty()) {
      if (options_.non_finite == NonFinitePolicy::kError)
        return InvalidArgument(bad, " is not finite, so the step was not applied (the state is as ",
                               "before it); pass --skip-nonfinite to skip such steps, or compile ",
                               "with loss scaling");
      guard_skipped_ = true;  // kSkip: the state stays as it was
      ++step_;
      return Status::Ok();
    }
  }
  for (auto& [state, update] : updates_)
    if (state->data != update->data) AMP_RETURN_IF_ERROR(Copy(*update, *state));
  AMP_RETURN_IF_ERROR(backend_->Synchronize());
  ++step_;
  return Status::Ok();
}

StatusOr<Tensor> Session::Fetch(const std::string& name) const {
  const TensorRef* r = nullptr;
  if (auto it = persistent_.find(name); it != persistent_.end()) r = &it->second.ref;
  if (!r) {
    auto it = refs_.find(name);
    if (it == refs_.end())
      return NotFound("no value '", name, "' to fetch", spec_ ? "" : " (Run has not been called)");
    r = &it->second;
  }
  Tensor t(r->dtype, r->dims);
  AMP_RETURN_IF_ERROR(backend_->CopyToHost(t.mutable_data(), r->data, t.nbytes()));
  return t;
}

StatusOr<double> Session::Loss() const {
  if (base_->training.loss.empty()) return NotFound("the model is not a training step");
  AMP_ASSIGN_OR_RETURN(Tensor t, Fetch(base_->training.loss));
  return t.GetDouble(0);
}

StatusOr<double> Session::LossScale() const {
  const std::string& name = base_->training.loss_scale;
  if (name.empty() || !persistent_.count(name)) return 1.0;
  AMP_ASSIGN_OR_RETURN(Tensor t, Fetch(name));
  return t.GetDouble(0);
}

bool Session::Guarded() const {
  return options_.non_finite != NonFinitePolicy::kApply && is_training() && spec_ &&
         spec_->training.skip_step.empty();
}

StatusOr<std::string> Session::FirstNonFinite() const {
  AMP_ASSIGN_OR_RETURN(double loss, Loss());
  if (!std::isfinite(loss)) return StrCat("the loss (", loss, ")");
  // The new state rather than the gradients: a non-finite gradient makes its
  // parameter's update (or its moments) non-finite, and the new state is live
  // at the end of the step anyway, where keeping every gradient live would
  // grow the arena (the MLP benchmark's FP32 step: 288 -> 496 MiB).
  for (const auto& [state, update] : updates_) {
    Tensor t(update->dtype, update->dims);
    AMP_RETURN_IF_ERROR(backend_->CopyToHost(t.mutable_data(), update->data, t.nbytes()));
    if (int64_t i = t.FirstNonFinite(); i >= 0) {
      std::string name;
      for (const auto& [n, b] : persistent_)
        if (&b.ref == state) name = n;
      return StrCat("the new value of '", name, "' (", t.GetDouble(i), " at element ", i, ")");
    }
  }
  return std::string();
}

StatusOr<bool> Session::StepSkipped() const {
  if (guard_skipped_) return true;
  // The specialized step's name: fuse-unscale gives the flag a new producer.
  const TrainingInfo& t0 = spec_ ? spec_->training : base_->training;
  if (t0.skip_step.empty()) return false;
  AMP_ASSIGN_OR_RETURN(Tensor t, Fetch(t0.skip_step));
  return t.GetInt(0) != 0;
}

std::vector<std::string> Session::StateNames() const {
  std::vector<std::string> out;
  for (const auto& [state, update] : base_->training.updates) out.push_back(state);
  return out;
}

StatusOr<Tensor> Session::Initializer(const std::string& name) const {
  auto it = persistent_.find(name);
  if (it == persistent_.end()) return NotFound("the model has no initializer '", name, "'");
  return Fetch(name);
}

Status Session::SetInitializer(const std::string& name, const Tensor& value) {
  auto it = persistent_.find(name);
  if (it == persistent_.end()) return NotFound("the model has no initializer '", name, "'");
  const TensorRef& r = it->second.ref;
  if (value.dtype() != r.dtype || value.dims() != r.dims)
    return InvalidArgument("'", name, "' is ", DTypeName(r.dtype), DimsToString(r.dims),
                           "; the value given is ", DTypeName(value.dtype()),
                           DimsToString(value.dims()));
  return backend_->CopyToDevice(r.data, value.data(), value.nbytes());
}

}  // namespace amp
