// amp._amp: the Python binding of the public C++ API (include/amp/), and
// nothing else: the package is a user of libamp like any other program.
// Status errors become Python exceptions (ValueError for bad input,
// RuntimeError for faults); numpy arrays and DLPack tensors (torch on the CPU
// or the GPU) are read through nanobind's ndarray without a Python copy.
#include <amp/amp.h>
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace nb = nanobind;

namespace {

// Thrown for a failed Status; translated to amp.InvalidInputError (a
// ValueError) or amp.AmpRuntimeError (a RuntimeError).
struct InvalidInput : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct Fault : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void Check(const amp::Status& s) {
  if (s.ok()) return;
  switch (s.code()) {
    case amp::StatusCode::kInvalidArgument:
    case amp::StatusCode::kUnimplemented:
    case amp::StatusCode::kNotFound:
      throw InvalidInput(s.message());
    default:
      throw Fault(s.message());
  }
}

template <typename T>
T Unwrap(amp::StatusOr<T> r) {
  Check(r.status());
  return std::move(r).value();
}

using AnyArray = nb::ndarray<nb::ro, nb::c_contig>;

amp::DType ToDType(nb::dlpack::dtype t, const std::string& name) {
  using C = nb::dlpack::dtype_code;
  auto code = static_cast<C>(t.code);
  if (t.lanes == 1) {
    if (code == C::Float && t.bits == 32) return amp::DType::kFloat32;
    if (code == C::Float && t.bits == 16) return amp::DType::kFloat16;
    if (code == C::Float && t.bits == 64) return amp::DType::kFloat64;
    if (code == C::Bfloat && t.bits == 16) return amp::DType::kBFloat16;
    if (code == C::Int && t.bits == 64) return amp::DType::kInt64;
    if (code == C::Int && t.bits == 32) return amp::DType::kInt32;
    if (code == C::Int && t.bits == 16) return amp::DType::kInt16;
    if (code == C::Int && t.bits == 8) return amp::DType::kInt8;
    if (code == C::UInt && t.bits == 8) return amp::DType::kUInt8;
    if (code == C::Bool && t.bits == 8) return amp::DType::kBool;
  }
  throw InvalidInput("'" + name + "' has an element type amp does not take (DLPack code " +
                     std::to_string(t.code) + ", " + std::to_string(t.bits) + " bits)");
}

amp::TensorView View(const AnyArray& a, const std::string& name) {
  amp::TensorView v;
  v.dtype = ToDType(a.dtype(), name);
  for (size_t i = 0; i < a.ndim(); ++i) v.dims.push_back(static_cast<int64_t>(a.shape(i)));
  v.data = a.data();
  if (a.device_type() == nb::device::cuda::value)
    v.memory = amp::Memory::kCuda;
  else if (a.device_type() != nb::device::cpu::value)
    throw InvalidInput("'" + name + "' lives on a device amp does not read (DLPack device " +
                       std::to_string(a.device_type()) + ")");
  return v;
}

nb::dlpack::dtype NumpyType(amp::DType t) {
  using C = nb::dlpack::dtype_code;
  switch (t) {
    case amp::DType::kFloat32:
      return nb::dtype<float>();
    case amp::DType::kFloat64:
      return nb::dtype<double>();
    case amp::DType::kFloat16:
      return {static_cast<uint8_t>(C::Float), 16, 1};
    case amp::DType::kBFloat16:
      return nb::dtype<float>();  // widened: numpy has no bf16
    case amp::DType::kInt64:
      return nb::dtype<int64_t>();
    case amp::DType::kInt32:
      return nb::dtype<int32_t>();
    case amp::DType::kInt16:
      return nb::dtype<int16_t>();
    case amp::DType::kInt8:
      return nb::dtype<int8_t>();
    case amp::DType::kUInt8:
      return nb::dtype<uint8_t>();
    case amp::DType::kBool:
      return nb::dtype<bool>();
    default:
      throw InvalidInput("a value of element type " + std::to_string(static_cast<int>(t)) +
                         " cannot be returned to Python");
  }
}

// An Array as a new numpy array that owns a copy of its bytes.
nb::object ToNumpy(const amp::Array& a) {
  std::vector<size_t> shape(a.dims().begin(), a.dims().end());
  nb::dlpack::dtype dt = NumpyType(a.dtype());
  size_t n = static_cast<size_t>(a.num_elements());
  bool widen = a.dtype() == amp::DType::kBFloat16;
  size_t bytes = widen ? n * 4 : a.bytes().size();
  uint8_t* data = new uint8_t[bytes ? bytes : 1];
  if (widen) {
    for (size_t i = 0; i < n; ++i) {
      uint32_t bits = static_cast<uint32_t>(a.at<uint16_t>(static_cast<int64_t>(i))) << 16;
      std::memcpy(data + 4 * i, &bits, 4);
    }
  } else if (bytes) {
    std::memcpy(data, a.data(), bytes);
  }
  nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<uint8_t*>(p); });
  return nb::cast(nb::ndarray<nb::numpy>(data, shape.size(), shape.data(), owner, nullptr, dt));
}

nb::dict Info(const amp::ValueInfo& v) {
  nb::dict d;
  d["name"] = v.name;
  d["dtype"] = static_cast<int>(v.dtype);
  nb::list dims;
  for (size_t i = 0; i < v.dims.size(); ++i) {
    if (v.dims[i] >= 0)
      dims.append(v.dims[i]);
    else
      dims.append(v.dim_names[i]);
  }
  d["shape"] = v.has_shape ? nb::object(dims) : nb::none();
  return d;
}

}  // namespace

NB_MODULE(_amp, m) {
  m.doc() = "amp's C++ API (libamp); use the amp package, not this module";
  nb::exception<InvalidInput>(m, "InvalidInputError", PyExc_ValueError);
  nb::exception<Fault>(m, "AmpRuntimeError", PyExc_RuntimeError);
  m.def("version", [] { return std::string(amp::Version()); });

  nb::class_<amp::CompileOptions>(m, "CompileOptions")
      .def(nb::init<>())
      .def_rw("opt_level", &amp::CompileOptions::opt_level)
      .def_rw("dtype", &amp::CompileOptions::dtype)
      .def_rw("fp32_ops", &amp::CompileOptions::fp32_ops)
      .def_rw("half_ops", &amp::CompileOptions::half_ops)
      .def_rw("fp32_nodes", &amp::CompileOptions::fp32_nodes)
      .def_rw("policy_file", &amp::CompileOptions::policy_file)
      .def_rw("keep_batchnorm_fp32", &amp::CompileOptions::keep_batchnorm_fp32)
      .def_rw("loss", &amp::CompileOptions::loss)
      .def_rw("label", &amp::CompileOptions::label)
      .def_rw("label_dtype", &amp::CompileOptions::label_dtype)
      .def_rw("output", &amp::CompileOptions::output)
      .def_rw("freeze", &amp::CompileOptions::freeze)
      .def_rw("train_mode", &amp::CompileOptions::train_mode)
      .def_rw("trainable", &amp::CompileOptions::trainable)
      .def_rw("seed", &amp::CompileOptions::seed)
      .def_rw("optimizer", &amp::CompileOptions::optimizer)
      .def_rw("lr", &amp::CompileOptions::lr)
      .def_rw("momentum", &amp::CompileOptions::momentum)
      .def_rw("dampening", &amp::CompileOptions::dampening)
      .def_rw("nesterov", &amp::CompileOptions::nesterov)
      .def_rw("weight_decay", &amp::CompileOptions::weight_decay)
      .def_rw("beta1", &amp::CompileOptions::beta1)
      .def_rw("beta2", &amp::CompileOptions::beta2)
      .def_rw("eps", &amp::CompileOptions::eps)
      .def_rw("loss_scale", &amp::CompileOptions::loss_scale)
      .def_rw("init_scale", &amp::CompileOptions::init_scale)
      .def_rw("growth_factor", &amp::CompileOptions::growth_factor)
      .def_rw("backoff_factor", &amp::CompileOptions::backoff_factor)
      .def_rw("growth_interval", &amp::CompileOptions::growth_interval)
      .def_rw("min_scale", &amp::CompileOptions::min_scale)
      .def_rw("max_scale", &amp::CompileOptions::max_scale)
      .def_rw("emit", &amp::CompileOptions::emit)
      .def_rw("bind_dims", &amp::CompileOptions::bind_dims);

  nb::class_<amp::CompiledModel>(m, "CompiledModel")
      .def_prop_ro(
          "onnx",
          [](const amp::CompiledModel& c) { return nb::bytes(c.onnx().data(), c.onnx().size()); })
      .def_prop_ro("report_json", &amp::CompiledModel::report_json)
      .def_prop_ro("log", &amp::CompiledModel::log)
      .def("save",
           [](const amp::CompiledModel& c, const std::string& path) { Check(c.Save(path)); });

  m.def("compile_path", [](const std::string& path, const amp::CompileOptions& o) {
    return Unwrap(amp::Compile(path, o));
  });
  m.def("compile_bytes", [](nb::bytes b, const amp::CompileOptions& o) {
    return Unwrap(amp::CompileBytes(std::string(b.c_str(), b.size()), o));
  });

  nb::class_<amp::ProcessGroup>(m, "ProcessGroup")
      .def_static("from_env",
                  [](double timeout, const std::string& device) {
                    return Unwrap(amp::ProcessGroup::FromEnvironment(timeout, device));
                  })
      .def_prop_ro("rank", &amp::ProcessGroup::rank)
      .def_prop_ro("size", &amp::ProcessGroup::size)
      .def_prop_ro("local_rank", &amp::ProcessGroup::local_rank)
      .def_prop_ro("launcher", &amp::ProcessGroup::launcher)
      .def_prop_ro("device", &amp::ProcessGroup::device)
      .def("all_reduce_mean", [](amp::ProcessGroup& g, std::vector<float> values) {
        Check(g.AllReduceMean(values.data(), values.size()));
        return values;
      });

  nb::class_<amp::SessionOptions>(m, "SessionOptions")
      .def(nb::init<>())
      .def_rw("process_group", &amp::SessionOptions::process_group, nb::arg("process_group").none())
      .def_rw("device", &amp::SessionOptions::device)
      .def_rw("inference", &amp::SessionOptions::inference)
      .def_rw("fuse_optimizer", &amp::SessionOptions::fuse_optimizer)
      .def_rw("fetch", &amp::SessionOptions::fetch)
      .def("set_non_finite", [](amp::SessionOptions& o, const std::string& p) {
        if (p == "error")
          o.non_finite = amp::SessionOptions::NonFinite::kError;
        else if (p == "skip")
          o.non_finite = amp::SessionOptions::NonFinite::kSkip;
        else if (p == "apply")
          o.non_finite = amp::SessionOptions::NonFinite::kApply;
        else
          throw InvalidInput("non_finite must be 'error', 'skip' or 'apply', not '" + p + "'");
      });

  nb::class_<amp::Session>(m, "Session")
      .def_static("from_bytes",
                  [](nb::bytes b, const amp::SessionOptions& o) {
                    return Unwrap(amp::Session::FromBytes(std::string(b.c_str(), b.size()), o));
                  })
      .def_static("open",
                  [](const std::string& path, const amp::SessionOptions& o) {
                    return Unwrap(amp::Session::Open(path, o));
                  })
      .def_static("create",
                  [](const amp::CompiledModel& c, const amp::SessionOptions& o) {
                    return Unwrap(amp::Session::Create(c, o));
                  })
      .def_prop_ro("is_training", &amp::Session::is_training)
      .def_prop_ro("device", &amp::Session::device)
      .def("inputs",
           [](const amp::Session& s) {
             nb::list l;
             for (const auto& v : s.inputs()) l.append(Info(v));
             return l;
           })
      .def("outputs",
           [](const amp::Session& s) {
             nb::list l;
             for (const auto& v : s.outputs()) l.append(Info(v));
             return l;
           })
      .def("set_input", [](amp::Session& s, const std::string& name,
                           AnyArray a) { Check(s.SetInput(name, View(a, name))); })
      .def("set_lr", [](amp::Session& s, double lr) { Check(s.SetLearningRate(lr)); })
      .def_prop_ro("lr", &amp::Session::learning_rate)
      .def("run",
           [](amp::Session& s) {
             nb::gil_scoped_release release;
             Check(s.Run());
           })
      .def("loss", [](const amp::Session& s) { return Unwrap(s.Loss()); })
      .def("loss_scale", [](const amp::Session& s) { return Unwrap(s.LossScale()); })
      .def("skipped", [](const amp::Session& s) { return Unwrap(s.StepSkipped()); })
      .def_prop_ro("step_count", &amp::Session::step)
      .def("fetch", [](const amp::Session& s,
                       const std::string& name) { return ToNumpy(Unwrap(s.Fetch(name))); })
      .def("parameter_names", &amp::Session::ParameterNames)
      .def("state_names", &amp::Session::StateNames)
      .def("set_parameter", [](amp::Session& s, const std::string& name,
                               AnyArray a) { Check(s.SetParameter(name, View(a, name))); })
      .def("save_checkpoint", [](const amp::Session& s, const std::string& dir,
                                 const std::string& meta) { Check(s.SaveCheckpoint(dir, meta)); })
      .def("load_checkpoint",
           [](amp::Session& s, const std::string& dir) { return Unwrap(s.LoadCheckpoint(dir)); })
      .def("export_inference",
           [](const amp::Session& s, const std::string& path) { Check(s.ExportInference(path)); });
}
