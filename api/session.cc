// amp::Session (amp/session.h) over the runtime's Executor: the public types
// converted at the boundary, the learning rate bound to its input, and the
// forward model kept for ExportInference.
#include "amp/session.h"

#include <cmath>
#include <cstring>

#include "amp/version.h"
#include "api/distributed_impl.h"
#include "compiler/loader.h"
#include "runtime/checkpoint.h"
#include "runtime/executor.h"
#include "runtime/export_inference.h"

namespace amp {

// Hidden: its members name internal types, which libamp does not export.
struct __attribute__((visibility("hidden"))) Session::Impl {
  std::unique_ptr<Executor> exe;
  // Where the forward model comes from again (ExportInference): a path, or
  // the serialized model.
  std::string path, bytes;
  std::string lr_input;  // "" when the step has none
  double lr = 0;
  std::shared_ptr<ProcessGroup> group;  // kept alive: the executor reads its communicator
  // The communicator of a group of more than one rank, else null.
  Communicator* ranks() const {
    return group && group->size() > 1 ? group->impl_->comm.get() : nullptr;
  }

  static StatusOr<std::unique_ptr<Impl>> Make(StatusOr<Model> loaded, const SessionOptions& o);
};

namespace {

ExecutorOptions ToExecutor(const SessionOptions& o) {
  ExecutorOptions e;
  e.device = o.device;
  e.mode = o.inference ? TrainingInfoMode::kForward : TrainingInfoMode::kAuto;
  e.fuse_optimizer = o.fuse_optimizer;
  if (!o.fuse_elementwise) e.disabled_passes.insert("fuse-elementwise");
  e.extra_outputs = o.fetch;
  switch (o.non_finite) {
    case SessionOptions::NonFinite::kError:
      e.non_finite = NonFinitePolicy::kError;
      break;
    case SessionOptions::NonFinite::kSkip:
      e.non_finite = NonFinitePolicy::kSkip;
      break;
    case SessionOptions::NonFinite::kApply:
      e.non_finite = NonFinitePolicy::kApply;
      break;
  }
  return e;
}

ValueInfo Info(const Value& v) {
  ValueInfo info;
  info.name = v.name();
  info.dtype = v.dtype();
  info.has_shape = v.type().shape.has_value();
  if (info.has_shape)
    for (const Dim& d : *v.type().shape) {
      info.dims.push_back(d.is_static() ? d.value() : -1);
      info.dim_names.push_back(d.is_static() ? "" : d.ToString());
    }
  return info;
}

Array ToArray(const Tensor& t) {
  std::vector<uint8_t> bytes(t.data(), t.data() + t.nbytes());
  return Array(t.dtype(), t.dims(), std::move(bytes));
}

// A host view as a Tensor (copied), checked: a known dtype, valid dims, data.
StatusOr<Tensor> ToTensor(const std::string& what, const TensorView& v) {
  if (DTypeSize(v.dtype) == 0)
    return InvalidArgument(what, ": element type ", static_cast<int>(v.dtype),
                           " cannot be held in memory");
  size_t n = DTypeSize(v.dtype);
  for (int64_t d : v.dims) {
    if (d < 0) return InvalidArgument(what, " has a negative dim ", d);
    if (__builtin_mul_overflow(n, static_cast<size_t>(d), &n))
      return InvalidArgument(what, " has more bytes than memory holds");
  }
  if (!v.data && n > 0) return InvalidArgument(what, " has no data (a null pointer)");
  Tensor t(v.dtype, v.dims);
  if (n > 0) std::memcpy(t.mutable_data(), v.data, n);
  return t;
}

}  // namespace

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;

StatusOr<std::unique_ptr<Session::Impl>> Session::Impl::Make(StatusOr<Model> loaded,
                                                             const SessionOptions& o) {
  if (!loaded.ok()) return loaded.status();
  auto impl = std::make_unique<Impl>();
  const Model& m = *loaded;
  if (!o.inference && m.training.active()) {
    // The optimizer's description names its learning-rate input ("lr" in
    // steps that predate it); its default is the compiled one.
    const std::string& described = m.training.optimizer.lr;
    for (const Value* v : m.graph->inputs())
      if ((described.empty() ? v->name() == "lr" : v->name() == described) && IsFloat(v->dtype()))
        impl->lr_input = v->name();
    if (!impl->lr_input.empty()) {
      impl->lr =
          m.training.optimizer.kind != OptimizerKind::kNone ? m.training.optimizer.default_lr : 0.0;
      if (auto it = m.metadata.find("amp.lr");
          m.training.optimizer.kind == OptimizerKind::kNone && it != m.metadata.end())
        impl->lr = std::strtod(it->second.c_str(), nullptr);
    }
  }
  ExecutorOptions eo = ToExecutor(o);
  impl->group = o.process_group;
  if (impl->group && impl->group->device() != o.device)
    return InvalidArgument("the process group was made for device '", impl->group->device(),
                           "' and the session runs on '", o.device,
                           "': pass the session's device to ProcessGroup::FromEnvironment");
  if (Communicator* comm = impl->ranks()) {
    if (o.inference || !m.training.active() || !IsDataParallel(m))
      return InvalidArgument("the process group has ", comm->size(),
                             " ranks, but the model was not compiled with data_parallel "
                             "(--data-parallel): each rank would train alone");
    eo.comm = comm;
  }
  // The model's own outputs (the logits) are read after a step as after a
  // forward pass: kept to the step's end.
  for (const auto& [name, type] : m.training.forward_outputs)
    if (m.graph->FindValue(name)) eo.extra_outputs.push_back(name);
  AMP_ASSIGN_OR_RETURN(impl->exe, Executor::Create(std::move(*loaded), eo));
  if (Communicator* comm = impl->ranks()) AMP_RETURN_IF_ERROR(BroadcastState(*impl->exe, *comm));
  return impl;
}

StatusOr<std::unique_ptr<Session>> Session::Open(const std::string& path,
                                                 const SessionOptions& options) {
  AMP_ASSIGN_OR_RETURN(auto impl, Impl::Make(LoadModel(path, ToExecutor(options).mode), options));
  impl->path = path;
  return std::unique_ptr<Session>(new Session(std::move(impl)));
}

StatusOr<std::unique_ptr<Session>> Session::FromBytes(const std::string& onnx,
                                                      const SessionOptions& options) {
  AMP_ASSIGN_OR_RETURN(auto impl,
                       Impl::Make(LoadModelBytes(onnx, ToExecutor(options).mode), options));
  impl->bytes = onnx;
  return std::unique_ptr<Session>(new Session(std::move(impl)));
}

StatusOr<std::unique_ptr<Session>> Session::Create(const CompiledModel& model,
                                                   const SessionOptions& options) {
  return FromBytes(model.onnx(), options);
}

bool Session::is_training() const { return impl_->exe->is_training(); }
std::string Session::device() const { return std::string(impl_->exe->device()); }

std::vector<ValueInfo> Session::inputs() const {
  std::vector<ValueInfo> out;
  for (const Value* v : impl_->exe->model().graph->inputs()) out.push_back(Info(*v));
  return out;
}

std::vector<ValueInfo> Session::outputs() const {
  std::vector<ValueInfo> out;
  const Model& m = impl_->exe->model();
  if (!m.training.active()) {
    for (const Value* v : m.graph->outputs()) out.push_back(Info(*v));
    return out;
  }
  // A step's graph outputs are its new state; what a user reads is the loss
  // and the model's own outputs.
  if (const Value* loss = m.graph->FindValue(m.training.loss)) out.push_back(Info(*loss));
  for (const auto& [name, type] : m.training.forward_outputs)
    if (const Value* v = m.graph->FindValue(name)) out.push_back(Info(*v));
  return out;
}

Status Session::SetInput(const std::string& name, const TensorView& value) {
  if (value.memory == Memory::kCuda) {
    if (impl_->exe->device() != "cuda")
      return InvalidArgument("input '", name, "' is CUDA memory, but the session runs on '",
                             impl_->exe->device(), "'; pass host memory or open it on cuda");
    return impl_->exe->SetInputOnDevice(name, value.dtype, value.dims, value.data);
  }
  AMP_ASSIGN_OR_RETURN(Tensor t, ToTensor(StrCat("input '", name, "'"), value));
  return impl_->exe->SetInput(name, t);
}

Status Session::SetLearningRate(double lr) {
  if (impl_->lr_input.empty())
    return InvalidArgument("the model has no learning-rate input (it is not a training step)");
  if (!std::isfinite(lr) || lr < 0)
    return InvalidArgument("the learning rate must be a finite number of 0 or more, not ", lr);
  impl_->lr = lr;
  return Status::Ok();
}

double Session::learning_rate() const { return impl_->lr; }

Status Session::Run() {
  if (!impl_->lr_input.empty()) {
    const Value* v = impl_->exe->model().graph->FindValue(impl_->lr_input);
    Tensor t(v->dtype(), {});
    t.SetDouble(0, impl_->lr);
    AMP_RETURN_IF_ERROR(impl_->exe->SetInput(impl_->lr_input, t));
  }
  return impl_->exe->Run();
}

StatusOr<double> Session::Loss() const { return impl_->exe->Loss(); }
StatusOr<double> Session::LossScale() const { return impl_->exe->LossScale(); }
StatusOr<bool> Session::StepSkipped() const { return impl_->exe->StepSkipped(); }
int64_t Session::step() const { return impl_->exe->step(); }

StatusOr<Array> Session::Fetch(const std::string& name) const {
  AMP_ASSIGN_OR_RETURN(Tensor t, impl_->exe->Fetch(name));
  return ToArray(t);
}

std::vector<std::string> Session::ParameterNames() const {
  std::vector<std::string> out;
  for (const auto& p : impl_->exe->model().training.optimizer.params) out.push_back(p.param);
  return out;
}

std::vector<std::string> Session::StateNames() const { return impl_->exe->StateNames(); }

Status Session::SetParameter(const std::string& name, const TensorView& value) {
  if (value.memory != Memory::kHost)
    return InvalidArgument("'", name, "': SetParameter takes host memory");
  AMP_ASSIGN_OR_RETURN(Tensor t, ToTensor(StrCat("'", name, "'"), value));
  return impl_->exe->SetInitializer(name, t);
}

Status Session::SaveCheckpoint(const std::string& dir, const std::string& metadata_json) const {
  if (!is_training()) return InvalidArgument("only a training step has a checkpoint");
  nlohmann::json meta = nlohmann::json::parse(metadata_json, nullptr, false);
  if (meta.is_discarded()) return InvalidArgument("the checkpoint's metadata is not JSON");
  return amp::SaveCheckpoint(*impl_->exe, dir, meta);
}

StatusOr<std::string> Session::LoadCheckpoint(const std::string& dir) {
  if (!is_training()) return InvalidArgument("only a training step has a checkpoint");
  AMP_ASSIGN_OR_RETURN(nlohmann::json meta, amp::LoadCheckpoint(*impl_->exe, dir));
  // Every rank resumes from rank 0's state.
  if (Communicator* comm = impl_->ranks()) AMP_RETURN_IF_ERROR(BroadcastState(*impl_->exe, *comm));
  return meta.dump();
}

Status Session::ExportInference(const std::string& path) const {
  if (!is_training()) return InvalidArgument("ExportInference needs a training step");
  StatusOr<Model> fwd = impl_->path.empty()
                            ? LoadModelBytes(impl_->bytes, TrainingInfoMode::kForward)
                            : LoadModel(impl_->path, TrainingInfoMode::kForward);
  if (!fwd.ok()) return fwd.status();
  return amp::ExportInference(*impl_->exe, std::move(*fwd), path);
}

const char* Version() { return AMP_VERSION; }

}  // namespace amp
