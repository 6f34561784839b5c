#include "runtime/executor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "compiler/loader.h"

namespace amp {
namespace {

std::string DimsToString(const std::vector<int64_t>& dims) {
  return ShapeToString(ShapeFromDims(dims));
}

}  // namespace

StatusOr<std::unique_ptr<Executor>> Executor::Open(const std::string& path,
                                                   const ExecutorOptions& options) {
  AMP_ASSIGN_OR_RETURN(Model m, LoadModel(path, options.mode));
  return Create(std::move(m), options);
}

StatusOr<std::unique_ptr<Executor>> Executor::Create(Model model, const ExecutorOptions& options) {
  for (const Node* n : model.graph->nodes())
    if (n->op_type() == "Gradient" && n->domain() == "ai.onnx.preview.training")
      return Unimplemented(n->Describe(),
                           ": the runtime runs compiled steps, and a Gradient node is expanded "
                           "into its backward graph by the compiler; compile the model with "
                           "amp-compile first (amp-run does this itself)");
  std::unique_ptr<Executor> s(new Executor());
  s->options_ = options;
  AMP_ASSIGN_OR_RETURN(s->backend_, CreateBackend(options.device));
  if (options.comm) AMP_RETURN_IF_ERROR(s->backend_->SetCommunicator(options.comm));
  s->base_ = std::make_unique<Model>(std::move(model));
  for (const Value* v : s->base_->graph->initializers()) {
    const Tensor& t = *v->initializer();
    if (DTypeSize(t.dtype()) == 0)
      return Unimplemented("initializer '", v->name(),
                           "' has an element type the runtime cannot hold");
    TensorRef r;
    r.dtype = t.dtype();
    r.dims = t.dims();
    AMP_ASSIGN_OR_RETURN(r.data, s->backend_->Allocate(t.nbytes()));
    s->persistent_[v->name()] = r;
    AMP_RETURN_IF_ERROR(s->backend_->CopyToDevice(r.data, t.data(), t.nbytes()));
    s->memory_.persistent_bytes += t.nbytes();
  }
  return s;
}

void Executor::Release(Loaded& l) {
  for (void* p : l.owned) backend_->Free(p);
  l.owned.clear();
}

Executor::~Executor() {
  if (!backend_) return;
  for (auto& [name, r] : persistent_) backend_->Free(r.data);
  for (auto& l : cache_) Release(*l);
  if (arena_) backend_->Free(arena_);
}

Status Executor::CheckInput(const std::string& name, DType dtype,
                            const std::vector<int64_t>& dims) const {
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
  if (dtype != in->dtype())
    return InvalidArgument("input '", name, "' is ", DTypeName(dtype), "; the model expects ",
                           DTypeName(in->dtype()));
  for (int64_t d : dims)
    if (d < 0) return InvalidArgument("input '", name, "' has a negative dim ", d);
  if (in->type().shape) {
    const Shape& shape = *in->type().shape;
    if (shape.size() != dims.size())
      return InvalidArgument("input '", name, "' has shape ", DimsToString(dims),
                             "; the model expects ", in->type().ToString());
    for (size_t i = 0; i < shape.size(); ++i)
      if (shape[i].is_static() && shape[i].value() != dims[i])
        return InvalidArgument("input '", name, "' has shape ", DimsToString(dims),
                               "; the model expects ", in->type().ToString());
  }
  return Status::Ok();
}

Status Executor::SetInput(const std::string& name, const Tensor& value) {
  AMP_RETURN_IF_ERROR(CheckInput(name, value.dtype(), value.dims()));
  pending_[name] = Pending{value, nullptr, value.dtype(), value.dims(), value.nbytes()};
  return Status::Ok();
}

Status Executor::SetInputOnDevice(const std::string& name, DType dtype, std::vector<int64_t> dims,
                                  const void* data) {
  AMP_RETURN_IF_ERROR(CheckInput(name, dtype, dims));
  size_t n = DTypeSize(dtype);
  for (int64_t d : dims)
    if (__builtin_mul_overflow(n, static_cast<size_t>(d), &n))
      return InvalidArgument("input '", name, "' has more bytes than memory holds");
  if (!data && n > 0) return InvalidArgument("input '", name, "' has no data (a null pointer)");
  pending_[name] = Pending{Tensor(), data, dtype, std::move(dims), n};
  return Status::Ok();
}

Status Executor::Copy(const TensorRef& from, TensorRef& to) {
  return backend_->CopyOnDevice(to.data, from.data, from.nbytes());
}

bool Executor::Matches(const Executable& exe) const {
  const SpecializeRequest& r = exe.request;
  if (r.input_dims.size() + r.frozen.size() != pending_.size()) return false;
  for (const auto& [name, p] : pending_) {
    if (auto f = r.frozen.find(name); f != r.frozen.end()) {
      // Frozen values are part of the graph (only host inputs are frozen).
      if (p.device || f->second.dims() != p.dims ||
          std::memcmp(f->second.data(), p.host.data(), p.nbytes) != 0)
        return false;
      continue;
    }
    auto d = r.input_dims.find(name);
    if (d == r.input_dims.end() || d->second != p.dims) return false;
  }
  return true;
}

StatusOr<std::unique_ptr<Executor::Loaded>> Executor::Load(Executable exe) {
  auto l = std::make_unique<Loaded>();
  l->exe = std::move(exe);
  const Executable& e = l->exe;
  l->refs.resize(e.slots.size());
  Status st = Status::Ok();
  for (size_t i = 0; i < e.slots.size() && st.ok(); ++i) {
    const Slot& slot = e.slots[i];
    TensorRef& r = l->refs[i];
    r.dtype = slot.dtype;
    r.dims = slot.dims;
    switch (slot.kind) {
      case SlotKind::kPersistent:
        r.data = persistent_.at(slot.buffer).data;
        break;
      case SlotKind::kArena:
        break;  // bound to the arena when activated
      case SlotKind::kInput:
      case SlotKind::kConstant: {
        auto p = backend_->Allocate(r.nbytes());
        if (!p.ok()) {
          st = p.status();
          break;
        }
        r.data = *p;
        l->owned.push_back(r.data);
        if (slot.kind == SlotKind::kInput) l->input_bytes += r.nbytes();
        if (slot.value->has_initializer())
          st = backend_->CopyToDevice(r.data, slot.value->initializer()->data(), r.nbytes());
        break;
      }
    }
  }
  if (!st.ok()) {
    Release(*l);
    return st;
  }
  auto step = [&](const Call& c) {
    Loaded::Step s{&c.attrs, {}, {}};
    for (int i : c.inputs) s.in.push_back(i < 0 ? nullptr : &l->refs[i]);
    for (int i : c.outputs) s.out.push_back(&l->refs[i]);
    return s;
  };
  for (const Call& c : e.init) {
    Loaded::Step s = step(c);
    if (Status r = backend_->Run(*s.call, s.in, s.out, 0); !r.ok()) {
      Release(*l);
      return r;
    }
  }
  for (const Call& c : e.program) l->program.push_back(step(c));
  for (const auto& [state, update] : e.updates)
    l->updates.emplace_back(&persistent_.at(e.slots[state].value->name()), &l->refs[update]);
  return l;
}

StatusOr<Executor::Loaded*> Executor::Prepare() {
  Loaded* l = nullptr;
  for (size_t i = 0; i < cache_.size(); ++i)
    if (Matches(cache_[i]->exe)) {
      // Most recently used last.
      std::rotate(cache_.begin() + i, cache_.begin() + i + 1, cache_.end());
      l = cache_.back().get();
      break;
    }
  if (!l) {
    SpecializeRequest r;
    for (const auto& [name, p] : pending_) r.input_dims[name] = p.dims;
    r.keep = options_.extra_outputs;
    r.fuse_optimizer = options_.fuse_optimizer;
    r.disabled_passes = options_.disabled_passes;
    // The non-finite guard: the step skips itself (guard-nonfinite) where the
    // backend can check in the step; else the runtime checks the new state
    // after it and restores nothing, so it needs the old state intact.
    bool guard =
        options_.non_finite != NonFinitePolicy::kApply && base_->training.skip_step.empty();
    bool in_step =
        guard && base_->training.has_optimizer && backend_->HasKernel("ai.amp", "AnyNonFinite");
    r.guard_nonfinite = in_step;
    r.in_place_updates = !guard || in_step;
    auto built = Specialize(*base_, r, *backend_);
    if (!built.ok() && built.status().code() == StatusCode::kUnimplemented &&
        options_.freeze_shape_inputs) {
      // Shapes that only the inputs' values decide: freeze the integer inputs.
      for (const auto& [name, p] : pending_)
        if (IsInteger(p.dtype) && !p.device) {
          r.frozen[name] = p.host;
          r.input_dims.erase(name);
        }
      if (!r.frozen.empty()) built = Specialize(*base_, r, *backend_);
    }
    if (!built.ok()) return built.status();
    AMP_ASSIGN_OR_RETURN(auto loaded, Load(std::move(*built)));
    if (cache_.size() == kMaxCached) {
      if (active_ == cache_.front().get()) active_ = nullptr;
      Release(*cache_.front());
      cache_.erase(cache_.begin());
    }
    cache_.push_back(std::move(loaded));
    l = cache_.back().get();
  }
  // One arena for every Executable: grown to the largest plan.
  bool fresh = false;
  if (l->exe.arena_bytes > arena_capacity_ || !arena_) {
    // The new arena first: if it cannot be had, the old one (and the last
    // Run's values, which Fetch may still read) stays.
    AMP_ASSIGN_OR_RETURN(void* grown, backend_->Allocate(l->exe.arena_bytes));
    if (arena_) backend_->Free(arena_);
    arena_ = grown;
    arena_capacity_ = l->exe.arena_bytes;
    fresh = true;
  }
  if (options_.poison && (fresh || l != active_)) {
    std::vector<uint8_t> poison(l->exe.arena_bytes, 0xff);
    AMP_RETURN_IF_ERROR(backend_->CopyToDevice(arena_, poison.data(), poison.size()));
  }
  if (l->arena != arena_) {
    for (size_t i = 0; i < l->exe.slots.size(); ++i)
      if (l->exe.slots[i].kind == SlotKind::kArena)
        l->refs[i].data = static_cast<uint8_t*>(arena_) + l->exe.slots[i].offset;
    l->arena = arena_;
  }
  active_ = l;
  memory_.arena_bytes = l->exe.arena_bytes;
  memory_.unshared_bytes = l->exe.unshared_bytes;
  memory_.input_bytes = l->input_bytes;
  memory_.nodes = l->program.size();
  return l;
}

namespace {
std::vector<ProfileEntry> MostFirst(const std::map<std::string, ProfileEntry>& m) {
  std::vector<ProfileEntry> v;
  for (const auto& [key, e] : m) v.push_back(e);
  std::sort(v.begin(), v.end(),
            [](const ProfileEntry& a, const ProfileEntry& b) { return a.seconds > b.seconds; });
  return v;
}
}  // namespace

std::vector<ProfileEntry> Executor::ProfileByOp() const { return MostFirst(profile_ops_); }
std::vector<ProfileEntry> Executor::ProfileByNode() const { return MostFirst(profile_nodes_); }

Status Executor::Run() {
  AMP_ASSIGN_OR_RETURN(Loaded * l, Prepare());
  for (const auto& [name, p] : pending_) {
    int slot = l->exe.Find(name);
    if (slot < 0 || l->exe.slots[slot].kind != SlotKind::kInput) continue;  // frozen
    void* to = l->refs[slot].data;
    AMP_RETURN_IF_ERROR(p.device ? backend_->CopyOnDevice(to, p.device, p.nbytes)
                                 : backend_->CopyToDevice(to, p.host.data(), p.nbytes));
  }
  for (Loaded::Step& s : l->program) {
    auto start = std::chrono::steady_clock::now();
    Status st = backend_->Run(*s.call, s.in, s.out, static_cast<uint64_t>(step_));
    if (!st.ok()) return st;
    if (options_.profile) {
      AMP_RETURN_IF_ERROR(backend_->Synchronize());
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const KernelAttrs& k = *s.call;
      std::string op = k.domain().empty() ? k.op_type() : k.domain() + ":" + k.op_type();
      for (auto [map, key] :
           {std::pair{&profile_ops_, op}, std::pair{&profile_nodes_, k.Describe()}}) {
        ProfileEntry& e = (*map)[key];
        e.key = key;
        ++e.calls;
        e.seconds += secs;
      }
    }
  }
  guard_skipped_ = false;
  // The guard the step itself ran (guard-nonfinite): a skipped step changed
  // no state.
  if (options_.non_finite != NonFinitePolicy::kApply && base_->training.skip_step.empty() &&
      is_training() && !l->exe.model->training.skip_step.empty()) {
    AMP_RETURN_IF_ERROR(backend_->Synchronize());
    AMP_ASSIGN_OR_RETURN(Tensor flag, Fetch(l->exe.model->training.skip_step));
    if (flag.GetInt(0) != 0) {
      if (options_.non_finite == NonFinitePolicy::kError) {
        AMP_ASSIGN_OR_RETURN(double loss, Loss());
        std::string what =
            std::isfinite(loss) ? std::string("a gradient") : StrCat("the loss (", loss, ")");
        return InvalidArgument(what, " is not finite, so the step was not applied (the state is ",
                               "as before it); pass --skip-nonfinite to skip such steps, or ",
                               "compile with loss scaling");
      }
      guard_skipped_ = true;
      ++step_;
      return Status::Ok();
    }
  }
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
  for (auto& [state, update] : l->updates)
    if (state->data != update->data) AMP_RETURN_IF_ERROR(Copy(*update, *state));
  AMP_RETURN_IF_ERROR(backend_->Synchronize());
  ++step_;
  return Status::Ok();
}

const TensorRef* Executor::Ref(const std::string& name) const {
  if (auto it = persistent_.find(name); it != persistent_.end()) return &it->second;
  if (!active_) return nullptr;
  int slot = active_->exe.Find(name);
  return slot < 0 ? nullptr : &active_->refs[slot];
}

StatusOr<Tensor> Executor::Fetch(const std::string& name) const {
  const TensorRef* r = Ref(name);
  if (!r)
    return NotFound("no value '", name, "' to fetch", active_ ? "" : " (Run has not been called)");
  if (!persistent_.count(name)) {
    int slot = active_->exe.Find(name);
    if (active_->exe.slots[slot].kind == SlotKind::kArena && !active_->exe.kept.count(name))
      return NotFound("'", name, "' is an intermediate of the step whose memory is reused before ",
                      "the step ends; ask for it to be kept (ExecutorOptions::extra_outputs, ",
                      "SessionOptions::fetch) to read it");
  }
  Tensor t(r->dtype, r->dims);
  AMP_RETURN_IF_ERROR(backend_->CopyToHost(t.mutable_data(), r->data, t.nbytes()));
  return t;
}

StatusOr<double> Executor::Loss() const {
  if (base_->training.loss.empty()) return NotFound("the model is not a training step");
  AMP_ASSIGN_OR_RETURN(Tensor t, Fetch(base_->training.loss));
  return t.GetDouble(0);
}

StatusOr<double> Executor::LossScale() const {
  const std::string& name = base_->training.loss_scale;
  if (name.empty() || !persistent_.count(name)) return 1.0;
  AMP_ASSIGN_OR_RETURN(Tensor t, Fetch(name));
  return t.GetDouble(0);
}

bool Executor::Guarded() const {
  return options_.non_finite != NonFinitePolicy::kApply && is_training() && active_ &&
         active_->exe.model->training.skip_step.empty();
}

StatusOr<std::string> Executor::FirstNonFinite() const {
  AMP_ASSIGN_OR_RETURN(double loss, Loss());
  if (!std::isfinite(loss)) return StrCat("the loss (", loss, ")");
  // The new state rather than the gradients: a non-finite gradient makes its
  // parameter's update (or its moments) non-finite, and the new state is live
  // at the end of the step anyway, where keeping every gradient live would
  // grow the arena (the MLP benchmark's FP32 step: 288 -> 496 MiB).
  // Read in place where the host can (the CPU's memory), else through one
  // host buffer reused for every tensor.
  std::vector<uint8_t> host;
  for (const auto& [state, update] : active_->updates) {
    const void* data = backend_->HostView(update->data);
    if (!data) {
      host.resize(update->nbytes());
      AMP_RETURN_IF_ERROR(backend_->CopyToHost(host.data(), update->data, host.size()));
      data = host.data();
    }
    if (int64_t i = amp::FirstNonFinite(data, update->dtype, update->numel()); i >= 0) {
      std::string name;
      for (const auto& [n, r] : persistent_)
        if (&r == state) name = n;
      Tensor one(update->dtype, {});
      std::memcpy(one.mutable_data(),
                  static_cast<const uint8_t*>(data) + i * DTypeSize(update->dtype),
                  DTypeSize(update->dtype));
      return StrCat("the new value of '", name, "' (", one.GetDouble(0), " at element ", i, ")");
    }
  }
  return std::string();
}

StatusOr<bool> Executor::StepSkipped() const {
  if (guard_skipped_) return true;
  // The specialized step's name: fuse-unscale gives the flag a new producer.
  const TrainingInfo& t0 = active_ ? active_->exe.model->training : base_->training;
  if (t0.skip_step.empty()) return false;
  AMP_ASSIGN_OR_RETURN(Tensor t, Fetch(t0.skip_step));
  return t.GetInt(0) != 0;
}

std::vector<std::string> Executor::StateNames() const {
  std::vector<std::string> out;
  for (const auto& [state, update] : base_->training.updates) out.push_back(state);
  return out;
}

StatusOr<Tensor> Executor::Initializer(const std::string& name) const {
  auto it = persistent_.find(name);
  if (it == persistent_.end()) return NotFound("the model has no initializer '", name, "'");
  return Fetch(name);
}

Status Executor::SetInitializer(const std::string& name, const Tensor& value) {
  auto it = persistent_.find(name);
  if (it == persistent_.end()) return NotFound("the model has no initializer '", name, "'");
  const TensorRef& r = it->second;
  if (value.dtype() != r.dtype || value.dims() != r.dims)
    return InvalidArgument("'", name, "' is ", DTypeName(r.dtype), DimsToString(r.dims),
                           "; the value given is ", DTypeName(value.dtype()),
                           DimsToString(value.dims()));
  return backend_->CopyToDevice(r.data, value.data(), value.nbytes());
}

}  // namespace amp
