#include "compiler/onnx_import.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/unknown_field_set.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

#include "compiler/attr_schema.h"
#include "onnx/onnx_pb.h"

namespace amp {
namespace {

namespace fs = std::filesystem;

// Protobuf refuses to parse messages nested deeper than this; a model's own
// structure needs about 6 levels, so ~30 levels of subgraphs fit.
constexpr int kProtoRecursionLimit = 100;
constexpr size_t kMaxProtoBytes = size_t{2} << 30;  // protobuf's own 2 GiB ceiling

void ImportGraphSignature(const onnx::GraphProto& g, Model& m);

class Importer {
 public:
  Importer(const onnx::ModelProto& proto, std::string directory, TrainingInfoMode mode)
      : proto_(proto), directory_(std::move(directory)), mode_(mode) {}

  StatusOr<Model> Run();
  StatusOr<Tensor> ImportTensorForTool(const onnx::TensorProto& t, const std::string& what) {
    return ImportTensor(t, what);
  }

 private:
  Status ImportOpsets(Model& m);
  Status ImportTrainingInfo(Model& m);
  Status ImportGraph(const onnx::GraphProto& g, Graph& graph);
  StatusOr<TensorType> ImportType(const onnx::TypeProto& t, const std::string& what);
  StatusOr<Tensor> ImportTensor(const onnx::TensorProto& t, const std::string& what);
  StatusOr<Tensor> ImportExternal(const onnx::TensorProto& t, DType dtype,
                                  std::vector<int64_t> dims, size_t nbytes,
                                  const std::string& what);
  StatusOr<Attribute> ImportAttribute(const onnx::AttributeProto& a, const std::string& where);
  Status CheckAttributes(const onnx::NodeProto& np, const std::string& where) const;
  int64_t OpsetOf(const std::string& node_domain) const;

  const onnx::ModelProto& proto_;
  std::string directory_;
  TrainingInfoMode mode_;
  std::unordered_map<std::string, std::shared_ptr<MappedFile>> mapped_;
  std::vector<OpsetImport> opsets_;
};

// The type an attribute holds. Very old writers omit it: inferred from the
// field that is set.
AttrType EffectiveType(const onnx::AttributeProto& a) {
  using AP = onnx::AttributeProto;
  if (a.type() != AP::UNDEFINED) return static_cast<AttrType>(a.type());
  if (a.has_f()) return AttrType::kFloat;
  if (a.has_i()) return AttrType::kInt;
  if (a.has_s()) return AttrType::kString;
  if (a.has_t()) return AttrType::kTensor;
  if (a.has_g()) return AttrType::kGraph;
  if (a.ints_size()) return AttrType::kInts;
  if (a.floats_size()) return AttrType::kFloats;
  if (a.strings_size()) return AttrType::kStrings;
  return AttrType::kUndefined;
}

StatusOr<Model> Importer::Run() {
  Model m;
  if (!proto_.has_graph()) return InvalidArgument("the model has no graph (not an ONNX model?)");
  m.ir_version = proto_.ir_version();
  if (m.ir_version < kMinIrVersion || m.ir_version > kMaxIrVersion)
    return Unimplemented(
        "unsupported ONNX IR version ", m.ir_version, " (amp reads IR versions ", kMinIrVersion,
        " to ", kMaxIrVersion, "); ",
        m.ir_version > kMaxIrVersion
            ? "the file was written by a newer onnx package: save it with an older one, or, "
              "if it uses nothing newer, set model.ir_version = 11 with the onnx Python package"
            : "the file is older than ONNX 1.7: re-export the model with a current exporter");
  AMP_RETURN_IF_ERROR(ImportOpsets(m));
  opsets_ = m.opsets;
  if (proto_.functions_size() > 0)
    return Unimplemented("model-local functions are not supported (the model defines '",
                         proto_.functions(0).name(), "'); export without them (inline them)");
  if (mode_ == TrainingInfoMode::kAuto)
    mode_ = proto_.training_info_size() > 0 ? TrainingInfoMode::kStep : TrainingInfoMode::kForward;
  if (proto_.training_info_size() > 0 && mode_ == TrainingInfoMode::kRefuse)
    return Unimplemented(
        "the model already has training_info; amp imports inference or "
        "training-mode forward models");
  if (proto_.training_info_size() == 0 && mode_ == TrainingInfoMode::kStep)
    return InvalidArgument(
        "the model is not a training step (it has no training_info); compile it with "
        "`amp-compile MODEL --loss ... --optimizer ...` first");
  m.producer_name = proto_.producer_name();
  m.producer_version = proto_.producer_version();
  m.doc_string = proto_.doc_string();
  for (const auto& p : proto_.metadata_props()) m.metadata[p.key()] = p.value();
  m.directory = directory_;
  if (mode_ == TrainingInfoMode::kStep) {
    AMP_RETURN_IF_ERROR(ImportTrainingInfo(m));
  } else {
    AMP_RETURN_IF_ERROR(ImportGraph(proto_.graph(), *m.graph));
  }
  ImportGraphSignature(proto_.graph(), m);
  return m;
}

// torch.export's graph signature, which the dynamo exporter keeps in the
// graph's metadata: one line per graph input, "<name>: <KIND> target='<fqn>'".
// BUFFER and CONSTANT_TENSOR targets (the initializers' names) are not
// parameters.
void ImportGraphSignature(const onnx::GraphProto& g, Model& m) {
  // GraphProto.metadata_props (field 16, ONNX 1.16) is newer than the onnx
  // library amp builds against: it arrives as an unknown field.
  constexpr int kGraphMetadataProps = 16;
  const auto& unknown = g.GetReflection()->GetUnknownFields(g);
  for (int i = 0; i < unknown.field_count(); ++i) {
    const auto& f = unknown.field(i);
    if (f.number() != kGraphMetadataProps ||
        f.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED)
      continue;
    onnx::StringStringEntryProto p;
    if (!p.ParseFromString(f.length_delimited()) ||
        p.key() != "pkg.torch.export.ExportedProgram.graph_signature")
      continue;
    std::istringstream lines(p.value());
    std::string line;
    while (std::getline(lines, line)) {
      size_t colon = line.find(": ");
      size_t target = line.find(" target='");
      if (colon == std::string::npos || target == std::string::npos || target < colon) continue;
      std::string kind = line.substr(colon + 2, target - colon - 2);
      size_t start = target + 9, end = line.find('\'', start);
      if (end == std::string::npos) continue;
      if (kind == "BUFFER" || kind == "CONSTANT_TENSOR")
        m.exporter_non_parameters.insert(line.substr(start, end - start));
    }
  }
}

// The typed parts of amp's description (loss scaling's and the optimizer's);
// every name must be a value of the step.
Status ImportDescription(const nlohmann::json& j, const Graph& g, TrainingInfo& info) {
  auto str = [](const nlohmann::json& o, const char* key) {
    return o.contains(key) && o[key].is_string() ? o[key].get<std::string>() : std::string();
  };
  auto names = [&](const char* key, std::map<std::string, std::string>& out) {
    if (!j.contains(key) || !j[key].is_object()) return;
    for (const auto& [k, v] : j[key].items())
      if (v.is_string()) out[k] = v.get<std::string>();
  };
  info.inverse_scale = str(j, "inverse_scale");
  names("unscaled", info.unscaled);
  names("half_copies", info.half_copies);
  if (j.contains("optimizer") && j["optimizer"].is_object()) {
    const nlohmann::json& o = j["optimizer"];
    OptimizerInfo& d = info.optimizer;
    std::string kind = str(o, "kind");
    d.kind = ParseOptimizerKind(kind);
    if (d.kind == OptimizerKind::kNone)
      return InvalidArgument("metadata 'amp.training' names optimizer '", kind,
                             "' (amp writes sgd, adam or adamw)");
    d.lr = str(o, "lr");
    auto num = [&](const char* key, auto& field) -> Status {
      using T = std::decay_t<decltype(field)>;
      if (!o.contains(key)) return Status::Ok();
      const nlohmann::json& v = o[key];
      if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_boolean())
          return InvalidArgument("metadata 'amp.training': optimizer '", key, "' is not a boolean");
        field = v.get<bool>();
      } else {
        double x = v.is_number() ? v.get<double>() : std::nan("");
        // NaN fails both tests; float fields must fit a float.
        if (!(std::fabs(x) <= (std::is_same_v<T, float> ? 3.4e38 : 1.7e308)))
          return InvalidArgument("metadata 'amp.training': optimizer '", key,
                                 "' is not a finite number");
        field = static_cast<T>(x);
      }
      return Status::Ok();
    };
    AMP_RETURN_IF_ERROR(num("default_lr", d.default_lr));
    AMP_RETURN_IF_ERROR(num("momentum", d.momentum));
    AMP_RETURN_IF_ERROR(num("dampening", d.dampening));
    AMP_RETURN_IF_ERROR(num("nesterov", d.nesterov));
    AMP_RETURN_IF_ERROR(num("weight_decay", d.weight_decay));
    AMP_RETURN_IF_ERROR(num("beta1", d.beta1));
    AMP_RETURN_IF_ERROR(num("beta2", d.beta2));
    AMP_RETURN_IF_ERROR(num("eps", d.eps));
    if (o.contains("params") && o["params"].is_array())
      for (const auto& p : o["params"]) {
        if (!p.is_object()) continue;
        d.params.push_back({str(p, "param"), str(p, "grad"), str(p, "exp_avg"),
                            str(p, "exp_avg_sq"), str(p, "momentum_buffer")});
      }
  }
  std::vector<const std::string*> named = {&info.inverse_scale, &info.optimizer.lr};
  for (const auto& [k, v] : info.unscaled) named.push_back(&v);
  for (const auto& [k, v] : info.half_copies) named.push_back(&v);
  for (const auto& p : info.optimizer.params)
    for (const std::string* s : {&p.param, &p.grad, &p.exp_avg, &p.exp_avg_sq, &p.momentum_buffer})
      named.push_back(s);
  for (const std::string* name : named)
    if (!name->empty() && !g.FindValue(*name))
      return InvalidArgument("metadata 'amp.training' names '", *name,
                             "', which the step does not compute");
  return Status::Ok();
}

Status Importer::ImportTrainingInfo(Model& m) {
  const onnx::TrainingInfoProto& ti = proto_.training_info(0);
  // The step reads the main graph's initializers (ONNX's scoping rule), so
  // they become the step graph's initializers.
  onnx::GraphProto step = ti.algorithm();
  std::unordered_set<std::string> own;
  for (const auto& t : step.initializer()) own.insert(t.name());
  for (const auto& t : proto_.graph().initializer())
    if (!own.count(t.name())) *step.add_initializer() = t;
  AMP_RETURN_IF_ERROR(ImportGraph(step, *m.graph));
  TrainingInfo& info = m.training;
  for (const auto& kv : ti.update_binding()) {
    const Value* state = m.graph->FindValue(kv.key());
    if (!state || !state->has_initializer())
      return InvalidArgument("training_info binds '", kv.key(), "', which is not an initializer");
    if (!m.graph->FindValue(kv.value()))
      return InvalidArgument("training_info binds '", kv.key(), "' to '", kv.value(),
                             "', which the step does not compute");
    info.updates.emplace_back(kv.key(), kv.value());
  }
  // The main graph is the forward model: its outputs that the step computes
  // too are the model's own outputs (the logits), with their exported types.
  for (const auto& out : proto_.graph().output())
    if (m.graph->FindValue(out.name())) {
      int32_t t = out.type().tensor_type().elem_type();
      info.forward_outputs.emplace_back(
          out.name(), IsSupportedDType(t) ? static_cast<DType>(t) : DType::kUndefined);
    }
  // amp's metadata names the loss, the trainable parameters and the skip flag.
  auto it = m.metadata.find("amp.training");
  if (it != m.metadata.end()) {
    nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return InvalidArgument("metadata 'amp.training' is not valid JSON");
    // A value of the wrong JSON type is an error, never an exception.
    try {
      info.loss = j.value("loss", "");
      info.skip_step = j.value("skip_step", "");
      if (j.contains("trainable") && j["trainable"].is_array())
        for (const auto& p : j["trainable"])
          if (p.is_string()) info.trainable.push_back(p.get<std::string>());
      // Steps written before these were recorded used fixed names.
      for (auto [key, field, legacy] :
           {std::tuple<const char*, std::string*, const char*>{"loss_scale", &info.loss_scale,
                                                               "loss_scale"},
            {"growth_tracker", &info.growth_tracker, "loss_scale.growth_tracker"},
            {"optimizer_step", &info.optimizer_step, "optimizer.step"}}) {
        std::string name =
            j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : legacy;
        if (m.graph->FindValue(name)) *field = name;
      }
      info.has_optimizer = !info.updates.empty();
      if (j.contains("loss_scale_rule")) {
        const nlohmann::json& r = j.at("loss_scale_rule");
        auto& rule = info.loss_scale_rule;
        rule.growth_factor = r.at("growth_factor").get<float>();
        rule.backoff_factor = r.at("backoff_factor").get<float>();
        rule.growth_interval = r.at("growth_interval").get<int64_t>();
        rule.min_scale = r.at("min_scale").get<float>();
        rule.max_scale = r.at("max_scale").get<float>();
        if (rule.growth_interval < 1 || !(rule.growth_factor >= 1) || !(rule.backoff_factor > 0))
          return InvalidArgument("metadata 'amp.training' has a loss_scale_rule out of range");
      }
      AMP_RETURN_IF_ERROR(ImportDescription(j, *m.graph, info));
    } catch (const nlohmann::json::exception& e) {
      return InvalidArgument("metadata 'amp.training' is malformed: ", e.what());
    }
  }
  if (info.loss.empty() && m.graph->outputs().size() > 0) info.loss = m.graph->outputs()[0]->name();
  for (const std::string* name : {&info.loss, &info.skip_step})
    if (!name->empty() && !m.graph->FindValue(*name))
      return InvalidArgument("metadata 'amp.training' names '", *name,
                             "', which the step does not compute");
  return Status::Ok();
}

Status Importer::ImportOpsets(Model& m) {
  bool has_default = false;
  for (const auto& o : proto_.opset_import()) {
    bool is_default = o.domain().empty() || o.domain() == "ai.onnx";
    for (const auto& seen : m.opsets) {
      bool seen_default = seen.domain.empty() || seen.domain == "ai.onnx";
      if (seen.domain == o.domain() || (is_default && seen_default))
        return InvalidArgument("opset_import lists domain '", o.domain(), "' twice");
    }
    if (is_default) {
      has_default = true;
      if (o.version() < kMinOpset || o.version() > kMaxOpset)
        return Unimplemented(
            "unsupported opset ", o.version(), " for the default ONNX domain (amp supports ",
            kMinOpset, " to ", kMaxOpset, "); ",
            o.version() < kMinOpset ? "re-export with opset_version=17, or upgrade the file with "
                                      "onnx.version_converter.convert_version(model, 17)"
                                    : "re-export with opset_version=25 or older");
    }
    m.opsets.push_back({o.domain(), o.version()});
  }
  if (!has_default) {
    if (proto_.opset_import_size() == 0)
      return InvalidArgument("the model has no opset_import (not an ONNX model?)");
    // A model of only other domains' ops (such as ai.onnx.preview.training's
    // optimizers) needs no default opset.
    auto uses_default = [](const onnx::GraphProto& g) {
      for (const auto& n : g.node())
        if (n.domain().empty() || n.domain() == "ai.onnx") return true;
      return false;
    };
    bool any = uses_default(proto_.graph());
    for (const auto& ti : proto_.training_info()) any = any || uses_default(ti.algorithm());
    if (any) return InvalidArgument("the model imports no opset of the default ONNX domain");
    m.opsets.push_back({"", kMinOpset});
  }
  return Status::Ok();
}

StatusOr<TensorType> Importer::ImportType(const onnx::TypeProto& t, const std::string& what) {
  if (!t.has_tensor_type())
    return Unimplemented(what,
                         " is not a tensor (sequence, map, optional and sparse types are "
                         "not supported)");
  const auto& tt = t.tensor_type();
  if (!IsSupportedDType(tt.elem_type()))
    return Unimplemented(what, " has element type ", tt.elem_type(),
                         ", which amp does not support");
  TensorType type;
  type.dtype = static_cast<DType>(tt.elem_type());
  if (tt.has_shape()) {
    Shape shape;
    for (const auto& d : tt.shape().dim()) {
      if (d.has_dim_value()) {
        if (d.dim_value() < 0) return InvalidArgument(what, " has a negative dim ", d.dim_value());
        if (d.dim_value() > kMaxDim)
          return InvalidArgument(what, " has dim ", d.dim_value(),
                                 ", larger than amp accepts (2^40)");
        shape.push_back(Dim(d.dim_value()));
      } else if (d.has_dim_param() && !d.dim_param().empty()) {
        shape.push_back(Dim::Symbol(d.dim_param()));
      } else {
        shape.push_back(Dim());
      }
    }
    type.shape = std::move(shape);
  }
  return type;
}

template <typename Field>
void CopyTyped(const Field& field, Tensor& t) {
  for (int i = 0; i < field.size(); ++i) t.SetDouble(i, static_cast<double>(field.Get(i)));
}

StatusOr<Tensor> Importer::ImportTensor(const onnx::TensorProto& t, const std::string& what) {
  if (!IsSupportedDType(t.data_type()))
    return Unimplemented(what, " has element type ", t.data_type(), ", which amp does not support");
  DType dtype = static_cast<DType>(t.data_type());
  std::vector<int64_t> dims(t.dims().begin(), t.dims().end());
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return InvalidArgument(what, " has a negative dim ", d);
    if (d > kMaxDim || (d != 0 && n > (int64_t{1} << 40) / d))
      return InvalidArgument(what, " has dims whose product is larger than amp accepts (2^40)");
    n *= d;
  }
  size_t nbytes = static_cast<size_t>(n) * DTypeSize(dtype);
  if (t.has_data_location() && t.data_location() == onnx::TensorProto::EXTERNAL)
    return ImportExternal(t, dtype, std::move(dims), nbytes, what);

  if (t.has_raw_data()) {
    if (t.raw_data().size() != nbytes)
      return InvalidArgument(
          what, " has ", t.raw_data().size(), " bytes of raw data but its shape ",
          ShapeToString(ShapeFromDims(dims)), " of ", DTypeName(dtype), " needs ", nbytes);
    Tensor out(dtype, std::move(dims));
    if (nbytes) std::memcpy(out.mutable_data(), t.raw_data().data(), nbytes);
    return out;
  }
  // Typed fields. ONNX stores float16/bfloat16/int8..uint16/bool in int32_data
  // (float16 and bfloat16 as their bit patterns).
  int64_t count = 0;
  switch (dtype) {
    case DType::kFloat32:
      count = t.float_data_size();
      break;
    case DType::kFloat64:
      count = t.double_data_size();
      break;
    case DType::kInt64:
      count = t.int64_data_size();
      break;
    case DType::kUInt32:
    case DType::kUInt64:
      count = t.uint64_data_size();
      break;
    default:
      count = t.int32_data_size();
      break;
  }
  if (count != n)
    return InvalidArgument(what, " holds ", count, " values but its shape ",
                           ShapeToString(ShapeFromDims(dims)), " needs ", n);
  Tensor out(dtype, std::move(dims));
  switch (dtype) {
    case DType::kFloat32:
      CopyTyped(t.float_data(), out);
      break;
    case DType::kFloat64:
      CopyTyped(t.double_data(), out);
      break;
    case DType::kInt64:
      if (n) std::memcpy(out.mutable_data(), t.int64_data().data(), nbytes);
      break;
    case DType::kUInt32:
    case DType::kUInt64:
      CopyTyped(t.uint64_data(), out);
      break;
    case DType::kFloat16:
    case DType::kBFloat16: {
      uint8_t* p = out.mutable_data();
      for (int64_t i = 0; i < n; ++i) {
        uint16_t bits = static_cast<uint16_t>(t.int32_data(static_cast<int>(i)));
        std::memcpy(p + 2 * i, &bits, 2);
      }
      break;
    }
    default:
      CopyTyped(t.int32_data(), out);
      break;
  }
  return out;
}

StatusOr<Tensor> Importer::ImportExternal(const onnx::TensorProto& t, DType dtype,
                                          std::vector<int64_t> dims, size_t nbytes,
                                          const std::string& what) {
  std::string location;
  int64_t offset = 0;
  int64_t length = -1;
  // Strictly: offset and length are plain decimal numbers (no sign, no
  // exponent, no hex, nothing after), each key at most once.
  auto parse_count = [&](const std::string& key, const std::string& v) -> StatusOr<int64_t> {
    bool digits = !v.empty() && v.size() <= 18 &&
                  std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits)
      return InvalidArgument(what, ": external data ", key, " '", v,
                             "' is not a non-negative decimal number");
    return static_cast<int64_t>(std::stoll(v));
  };
  std::unordered_set<std::string> seen;
  for (const auto& kv : t.external_data()) {
    if (!seen.insert(kv.key()).second)
      return InvalidArgument(what, ": external data key '", kv.key(), "' is given twice");
    if (kv.key() == "location") {
      location = kv.value();
      if (location.find('\0') != std::string::npos)
        return InvalidArgument(what, ": external data location contains a NUL byte");
    } else if (kv.key() == "offset") {
      AMP_ASSIGN_OR_RETURN(offset, parse_count("offset", kv.value()));
    } else if (kv.key() == "length") {
      AMP_ASSIGN_OR_RETURN(length, parse_count("length", kv.value()));
    }
  }
  if (location.empty()) return InvalidArgument(what, " is external data without a location");
  if (directory_.empty())
    return InvalidArgument(what, " refers to external data '", location,
                           "', but the model was not read from a file");
  fs::path loc(location);
  if (loc.is_absolute())
    return InvalidArgument(what, ": external data location '", location,
                           "' is an absolute path; it must be relative to the model's folder");
  std::error_code ec;
  fs::path root = fs::weakly_canonical(fs::path(directory_), ec);
  fs::path full = fs::weakly_canonical(fs::path(directory_) / loc, ec);
  if (ec) return InvalidArgument(what, ": cannot resolve external data location '", location, "'");
  auto rel = full.lexically_relative(root);
  if (rel.empty() || *rel.begin() == "..")
    return InvalidArgument(what, ": external data location '", location,
                           "' is outside the model's folder");
  if (offset < 0) return InvalidArgument(what, ": external data offset ", offset, " is negative");
  if (length >= 0 && static_cast<size_t>(length) != nbytes)
    return InvalidArgument(what, ": external data length ", length, " does not match its shape (",
                           nbytes, " bytes)");
  auto it = mapped_.find(full.string());
  if (it == mapped_.end()) {
    auto file = MappedFile::Open(full.string());
    if (!file.ok())
      return NotFound(what, ": external data file '", location, "' cannot be read (",
                      file.status().message(), ")");
    it = mapped_.emplace(full.string(), *file).first;
  }
  const auto& file = it->second;
  if (static_cast<size_t>(offset) > file->size() || nbytes > file->size() - offset)
    return InvalidArgument(what, ": external data file '", location, "' has ", file->size(),
                           " bytes, fewer than offset ", offset, " + length ", nbytes);
  return Tensor(dtype, std::move(dims), file, static_cast<size_t>(offset));
}

StatusOr<Attribute> Importer::ImportAttribute(const onnx::AttributeProto& a,
                                              const std::string& where) {
  std::string what = StrCat(where, " attribute '", a.name(), "'");
  if (!a.ref_attr_name().empty())
    return Unimplemented(what, " refers to a function attribute, which amp does not support");
  using AP = onnx::AttributeProto;
  AP::AttributeType type = static_cast<AP::AttributeType>(EffectiveType(a));
  switch (type) {
    case AP::FLOAT:
      return Attribute::Float(a.f());
    case AP::INT:
      return Attribute::Int(a.i());
    case AP::STRING:
      return Attribute::String(a.s());
    case AP::INTS:
      return Attribute::Ints({a.ints().begin(), a.ints().end()});
    case AP::FLOATS:
      return Attribute::Floats({a.floats().begin(), a.floats().end()});
    case AP::STRINGS: {
      Attribute out;
      out.kind = Attribute::Kind::kStrings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      return out;
    }
    case AP::TENSOR: {
      AMP_ASSIGN_OR_RETURN(Tensor t, ImportTensor(a.t(), what));
      return Attribute::FromTensor(std::move(t));
    }
    case AP::GRAPH:
    case AP::GRAPHS:
      return Unimplemented(what, " is a subgraph; control flow (If, Loop, Scan) is not supported");
    default:
      return Unimplemented(what, " has attribute type ", static_cast<int>(type),
                           ", which amp does not support");
  }
}

// Every attribute against the op's schema at the model's opset: known name,
// declared type, required ones present. Ops the schema table does not know
// are left to the op table, which names them as unsupported.
// The version of `domain` the model imports (the latest one for a domain
// it does not import, as amp's own ai.amp steps need none).
int64_t Importer::OpsetOf(const std::string& node_domain) const {
  std::string domain = node_domain == "ai.onnx" ? "" : node_domain;
  for (const auto& o : opsets_)
    if ((o.domain == "ai.onnx" ? "" : o.domain) == domain) return o.version;
  return domain.empty() ? 0 : INT64_MAX;
}

Status Importer::CheckAttributes(const onnx::NodeProto& np, const std::string& where) const {
  int64_t opset = OpsetOf(np.domain());
  AttrSchemaLookup found = FindAttrSchema(np.domain(), np.op_type(), opset);
  if (!found.schema) {
    if (found.first_since)
      return InvalidArgument(where, ": ", np.op_type(), " first appears in opset ",
                             found.first_since, " of its domain, but the model imports opset ",
                             opset, "; re-export with opset_version=", found.first_since,
                             " or newer");
    return Status::Ok();
  }
  const OpAttrSchema& schema = *found.schema;
  std::string op = StrCat(np.op_type(), "-", schema.since_version);
  for (const auto& a : np.attribute()) {
    if (a.name().empty()) return InvalidArgument(where, " has an attribute with no name");
    // Names that start with "__" are internal to their writer; onnx.checker
    // does not check them either (OpSchema::Verify's internal symbols).
    if (a.name().rfind("__", 0) == 0) continue;
    const AttrSpec* spec = schema.Find(a.name());
    if (!spec) {
      std::string known;
      for (const AttrSpec& s : schema.attrs) known += StrCat(known.empty() ? "" : ", ", s.name);
      return InvalidArgument(where, ": '", a.name(), "' is not an attribute of ", op,
                             known.empty() ? " (it has none)" : StrCat(" (it has ", known, ")"));
    }
    AttrType type = EffectiveType(a);
    if (type != spec->type)
      return InvalidArgument(where, ": attribute '", a.name(), "' of ", op, " must be ",
                             AttrTypeName(spec->type), ", but the file stores ",
                             type == AttrType::kUndefined ? "no value" : AttrTypeName(type));
  }
  for (const AttrSpec& s : schema.attrs) {
    if (!s.required) continue;
    bool present = false;
    for (const auto& a : np.attribute()) present = present || a.name() == s.name;
    if (!present)
      return InvalidArgument(where, ": ", op, " requires attribute '", s.name, "' (",
                             AttrTypeName(s.type), ")");
  }
  return Status::Ok();
}

Status Importer::ImportGraph(const onnx::GraphProto& g, Graph& graph) {
  graph.name = g.name();
  graph.doc_string = g.doc_string();
  if (g.sparse_initializer_size() > 0)
    return Unimplemented("sparse initializers are not supported");

  // Initializers first: a graph input with the same name (IR < 4 style) is the
  // same value, not a second definition.
  std::unordered_map<std::string, const onnx::TensorProto*> init_by_name;
  for (const auto& t : g.initializer()) {
    if (t.name().empty()) return InvalidArgument("an initializer has no name");
    if (!init_by_name.emplace(t.name(), &t).second)
      return InvalidArgument("initializer '", t.name(), "' is defined more than once");
    AMP_ASSIGN_OR_RETURN(Tensor tensor, ImportTensor(t, StrCat("initializer '", t.name(), "'")));
    AMP_ASSIGN_OR_RETURN(Value * v, graph.CreateValue(t.name()));
    graph.SetInitializerData(v, std::move(tensor));
  }
  for (const auto& in : g.input()) {
    if (init_by_name.count(in.name())) continue;
    if (in.name().empty()) return InvalidArgument("a graph input has no name");
    if (graph.FindValue(in.name()))
      return InvalidArgument("graph input '", in.name(), "' is declared more than once");
    // ONNX requires the shape of a graph input (its dims may be symbolic or
    // unknown, its rank not); onnx.checker refuses the model without it.
    if (in.type().has_tensor_type() && !in.type().tensor_type().has_shape())
      return InvalidArgument("graph input '", in.name(),
                             "' has no shape; ONNX requires one for graph inputs (dims may be "
                             "symbolic): re-export with example inputs, or set it with "
                             "onnx.helper.make_tensor_value_info(name, elem_type, [dims])");
    AMP_ASSIGN_OR_RETURN(TensorType type,
                         ImportType(in.type(), StrCat("graph input '", in.name(), "'")));
    graph.AddInput(in.name(), std::move(type));
  }
  // Declared value types (value_info) are applied after the nodes exist.
  // Create every node output before wiring inputs, so nodes may come in any
  // order; TopologicalSort then orders them and finds cycles.
  std::vector<Node*> nodes;
  for (int k = 0; k < g.node_size(); ++k) {
    const auto& np = g.node(k);
    std::string where = np.name().empty() ? StrCat("node #", k, " (", np.op_type(), ")")
                                          : StrCat("node '", np.name(), "' (", np.op_type(), ")");
    if (np.op_type().empty()) return InvalidArgument(where, " has no op_type");
    std::vector<Value*> outs;
    for (const auto& o : np.output()) {
      if (o.empty()) {  // omitted optional output: give it a private name
        AMP_ASSIGN_OR_RETURN(Value * v, graph.CreateValue(graph.UniqueName(StrCat("unused_", k))));
        outs.push_back(v);
        continue;
      }
      if (Value* existing = graph.FindValue(o)) {
        std::string first = existing->is_graph_input()    ? "a graph input"
                            : existing->has_initializer() ? "an initializer"
                                                          : "another node's output";
        return InvalidArgument(where, " defines '", o, "', which is already defined as ", first);
      }
      AMP_ASSIGN_OR_RETURN(Value * v, graph.CreateValue(o));
      outs.push_back(v);
    }
    Node* node = graph.AddNodeWithOutputs(np.op_type(), np.domain() == "ai.onnx" ? "" : np.domain(),
                                          {}, outs);
    node->set_name(np.name());
    AMP_RETURN_IF_ERROR(CheckAttributes(np, where));
    for (const auto& a : np.attribute()) {
      if (node->HasAttr(a.name()))
        return InvalidArgument(where, " has attribute '", a.name(), "' twice");
      AMP_ASSIGN_OR_RETURN(Attribute attr, ImportAttribute(a, where));
      node->SetAttr(a.name(), std::move(attr));
    }
    // Older converters write auto_pad "" for the default; onnxruntime reads
    // it as NOTSET, and so does amp.
    if (const Attribute* pad = node->FindAttr("auto_pad");
        pad && pad->kind == Attribute::Kind::kString && pad->s.empty())
      node->SetAttr("auto_pad", Attribute::String("NOTSET"));
    AMP_RETURN_IF_ERROR(CheckAttributeValues(*node));
    nodes.push_back(node);
  }
  for (int k = 0; k < g.node_size(); ++k) {
    const onnx::NodeProto& np = g.node(k);
    AttrSchemaLookup schema = FindAttrSchema(np.domain(), np.op_type(), OpsetOf(np.domain()));
    for (const auto& in : np.input()) {
      if (in.empty()) {
        size_t i = nodes[k]->num_inputs();
        if (schema.schema && schema.schema->InputRequired(i))
          return InvalidArgument(nodes[k]->Describe(), ": input ", i, " of ", np.op_type(), "-",
                                 schema.schema->since_version,
                                 " is required, but its name is empty");
        nodes[k]->AddInput(nullptr);
        continue;
      }
      Value* v = graph.FindValue(in);
      if (!v)
        return InvalidArgument(nodes[k]->Describe(), " reads '", in,
                               "', which no node, input or initializer defines");
      nodes[k]->AddInput(v);
    }
  }
  for (const auto& out : g.output()) {
    Value* v = graph.FindValue(out.name());
    if (!v)
      return InvalidArgument("graph output '", out.name(),
                             "' is not defined by any node, input or initializer");
    for (Value* seen : graph.outputs())
      if (seen == v) return InvalidArgument("graph output '", out.name(), "' is listed twice");
    AMP_ASSIGN_OR_RETURN(TensorType type,
                         ImportType(out.type(), StrCat("graph output '", out.name(), "'")));
    if (!v->has_initializer() && !v->is_graph_input()) v->set_type(std::move(type));
    graph.AddOutput(v);
  }
  for (const auto& vi : g.value_info()) {
    Value* v = graph.FindValue(vi.name());
    if (!v || v->has_initializer() || v->is_graph_input()) continue;  // stale or redundant
    AMP_ASSIGN_OR_RETURN(TensorType type,
                         ImportType(vi.type(), StrCat("value_info '", vi.name(), "'")));
    v->set_type(std::move(type));
  }
  return graph.TopologicalSort();
}

}  // namespace

StatusOr<Model> ImportModelProto(const onnx::ModelProto& proto, const std::string& directory,
                                 TrainingInfoMode mode) {
  Importer importer(proto, directory, mode);
  return importer.Run();
}

StatusOr<Model> ImportModelBytes(const void* data, size_t size, const std::string& directory,
                                 TrainingInfoMode mode) {
  if (size == 0) return InvalidArgument("the file is empty");
  if (size >= kMaxProtoBytes)
    return InvalidArgument("the file is ", size, " bytes; an ONNX protobuf must be under 2 GiB ",
                           "(store large weights as external data)");
  google::protobuf::io::CodedInputStream stream(static_cast<const uint8_t*>(data),
                                                static_cast<int>(size));
  stream.SetRecursionLimit(kProtoRecursionLimit);
  onnx::ModelProto proto;
  if (!proto.ParseFromCodedStream(&stream) || !stream.ConsumedEntireMessage())
    return InvalidArgument(
        "not a valid ONNX model: the protobuf cannot be parsed (the file is "
        "truncated or corrupt, or nests subgraphs deeper than ",
        kProtoRecursionLimit, " levels)");
  return ImportModelProto(proto, directory, mode);
}

StatusOr<Tensor> ImportTensorBytes(const void* data, size_t size, const std::string& what) {
  if (size >= kMaxProtoBytes) return InvalidArgument(what, " is over 2 GiB");
  onnx::TensorProto t;
  if (!t.ParseFromArray(data, static_cast<int>(size)))
    return InvalidArgument(what, " is not a TensorProto (truncated or corrupt)");
  static const onnx::ModelProto empty;
  Importer importer(empty, "", TrainingInfoMode::kRefuse);
  return importer.ImportTensorForTool(t, what);
}

StatusOr<Model> ImportModelFile(const std::string& path, TrainingInfoMode mode) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return InvalidArgument("'", path, "' is a folder, not a file");
  AMP_ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  auto model = ImportModelBytes(file->data(), file->size(), dir.string(), mode);
  if (!model.ok()) return model.status().WithContext(StrCat("'", path, "'"));
  return model;
}

}  // namespace amp
