#include "compiler/onnx_export.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "onnx/onnx_pb.h"

namespace amp {
namespace {

namespace fs = std::filesystem;

void ExportType(const TensorType& t, onnx::TypeProto* out) {
  auto* tt = out->mutable_tensor_type();
  tt->set_elem_type(static_cast<int32_t>(t.dtype));
  if (!t.shape) return;
  auto* shape = tt->mutable_shape();
  for (const Dim& d : *t.shape) {
    auto* dim = shape->add_dim();
    if (d.is_static())
      dim->set_dim_value(d.value());
    else if (d.is_symbolic())
      dim->set_dim_param(d.symbol());
  }
}

class Exporter {
 public:
  Exporter(const ExportOptions& options, std::string data_path, std::string data_location)
      : options_(options),
        data_path_(std::move(data_path)),
        data_location_(std::move(data_location)) {}

  Status ExportTensor(const Tensor& t, const std::string& name, onnx::TensorProto* out) {
    out->set_name(name);
    out->set_data_type(static_cast<int32_t>(t.dtype()));
    for (int64_t d : t.dims()) out->add_dims(d);
    if (options_.external_data_threshold > 0 && t.nbytes() >= options_.external_data_threshold &&
        !data_path_.empty()) {
      if (!data_file_.is_open()) {
        data_file_.open(data_path_, std::ios::binary | std::ios::trunc);
        if (!data_file_) return IoError("cannot write external data file '", data_path_, "'");
      }
      // Align each tensor to 64 bytes so that it can be mapped and read directly.
      while (offset_ % 64) {
        data_file_.put('\0');
        ++offset_;
      }
      data_file_.write(reinterpret_cast<const char*>(t.data()),
                       static_cast<std::streamsize>(t.nbytes()));
      if (!data_file_) return IoError("writing external data file '", data_path_, "' failed");
      out->set_data_location(onnx::TensorProto::EXTERNAL);
      auto add = [out](const std::string& k, const std::string& v) {
        auto* kv = out->add_external_data();
        kv->set_key(k);
        kv->set_value(v);
      };
      add("location", data_location_);
      add("offset", std::to_string(offset_));
      add("length", std::to_string(t.nbytes()));
      offset_ += t.nbytes();
      return Status::Ok();
    }
    out->set_raw_data(t.data(), t.nbytes());
    return Status::Ok();
  }

  Status Finish() {
    if (data_file_.is_open()) {
      data_file_.close();
      if (!data_file_) return IoError("closing external data file '", data_path_, "' failed");
    }
    return Status::Ok();
  }

 private:
  const ExportOptions& options_;
  std::string data_path_;
  std::string data_location_;
  std::ofstream data_file_;
  size_t offset_ = 0;
};

Status ExportAttribute(const std::string& name, const Attribute& a, Exporter& ex,
                       onnx::AttributeProto* out) {
  using AP = onnx::AttributeProto;
  out->set_name(name);
  switch (a.kind) {
    case Attribute::Kind::kFloat:
      out->set_type(AP::FLOAT);
      out->set_f(a.f);
      break;
    case Attribute::Kind::kInt:
      out->set_type(AP::INT);
      out->set_i(a.i);
      break;
    case Attribute::Kind::kString:
      out->set_type(AP::STRING);
      out->set_s(a.s);
      break;
    case Attribute::Kind::kFloats:
      out->set_type(AP::FLOATS);
      for (float f : a.floats) out->add_floats(f);
      break;
    case Attribute::Kind::kInts:
      out->set_type(AP::INTS);
      for (int64_t i : a.ints) out->add_ints(i);
      break;
    case Attribute::Kind::kStrings:
      out->set_type(AP::STRINGS);
      for (const auto& s : a.strings) out->add_strings(s);
      break;
    case Attribute::Kind::kTensor:
      out->set_type(AP::TENSOR);
      return ex.ExportTensor(a.t, "", out->mutable_t());
  }
  return Status::Ok();
}

StatusOr<onnx::ModelProto> Export(const Model& model, const ExportOptions& options, Exporter& ex) {
  onnx::ModelProto proto;
  proto.set_ir_version(model.ir_version);
  proto.set_producer_name(model.producer_name.empty() ? "amp" : model.producer_name);
  proto.set_producer_version(model.producer_version);
  if (!model.doc_string.empty()) proto.set_doc_string(model.doc_string);
  for (const auto& o : model.opsets) {
    auto* op = proto.add_opset_import();
    op->set_domain(o.domain);
    op->set_version(o.version);
  }
  std::map<std::string, std::string> metadata = model.metadata;
  if (model.training.active()) {
    std::string json = "{\"loss\": \"" + model.training.loss + "\", \"updates\": [";
    bool first = true;
    for (const auto& [state, update] : model.training.updates) {
      json += StrCat(first ? "" : ", ", "[\"", state, "\", \"", update, "\"]");
      first = false;
    }
    json += "], \"trainable\": [";
    first = true;
    for (const auto& p : model.training.trainable) {
      json += StrCat(first ? "" : ", ", "\"", p, "\"");
      first = false;
    }
    metadata["amp.training"] = json + "]}";
  }
  for (const auto& [k, v] : metadata) {
    auto* p = proto.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  }
  const Graph& g = *model.graph;
  auto* gp = proto.mutable_graph();
  gp->set_name(g.name.empty() ? "main" : g.name);
  if (!g.doc_string.empty()) gp->set_doc_string(g.doc_string);
  for (Value* in : g.inputs()) {
    auto* vi = gp->add_input();
    vi->set_name(in->name());
    ExportType(in->type(), vi->mutable_type());
  }
  if (model.training.active()) {
    // Functional form: state in as inputs (initializers give the start).
    for (const auto& [state, update] : model.training.updates) {
      const Value* s = g.FindValue(state);
      auto* vi = gp->add_input();
      vi->set_name(state);
      ExportType(s->type(), vi->mutable_type());
    }
  }
  for (Value* init : g.initializers())
    AMP_RETURN_IF_ERROR(ex.ExportTensor(*init->initializer(), init->name(), gp->add_initializer()));
  for (Node* n : g.nodes()) {
    auto* np = gp->add_node();
    np->set_op_type(n->op_type());
    if (!n->domain().empty()) np->set_domain(n->domain());
    if (!n->name().empty()) np->set_name(n->name());
    for (Value* in : n->inputs()) np->add_input(in ? in->name() : "");
    for (Value* out : n->outputs()) {
      // A private name for an omitted optional output stays omitted.
      bool unused =
          out->uses().empty() && !out->is_graph_output() && out->name().rfind("unused_", 0) == 0;
      np->add_output(unused ? "" : out->name());
    }
    for (const auto& [name, attr] : n->attributes())
      AMP_RETURN_IF_ERROR(ExportAttribute(name, attr, ex, np->add_attribute()));
    if (options.value_info) {
      for (Value* out : n->outputs()) {
        if (out->is_graph_output() || out->dtype() == DType::kUndefined || out->uses().empty())
          continue;
        auto* vi = gp->add_value_info();
        vi->set_name(out->name());
        ExportType(out->type(), vi->mutable_type());
      }
    }
  }
  for (Value* out : g.outputs()) {
    auto* vi = gp->add_output();
    vi->set_name(out->name());
    if (out->dtype() == DType::kUndefined)
      return InvalidArgument("graph output '", out->name(), "' has no known element type");
    ExportType(out->type(), vi->mutable_type());
  }
  AMP_RETURN_IF_ERROR(ex.Finish());
  return proto;
}

}  // namespace

StatusOr<onnx::ModelProto> ExportModelProto(const Model& model, const ExportOptions& options) {
  ExportOptions inline_only = options;
  inline_only.external_data_threshold = 0;  // no file to write to
  Exporter ex(inline_only, "", "");
  return Export(model, inline_only, ex);
}

Status SaveModelFile(const Model& model, const std::string& path, const ExportOptions& options) {
  fs::path p(path);
  std::string location = p.filename().string() + ".data";
  std::string data_path = (p.parent_path() / location).string();
  Exporter ex(options, data_path, location);
  AMP_ASSIGN_OR_RETURN(onnx::ModelProto proto, Export(model, options, ex));
  if (proto.ByteSizeLong() >= (size_t{2} << 30))
    return InvalidArgument("the model is over 2 GiB; write its weights as external data");
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return IoError("cannot write '", tmp, "'");
    if (!proto.SerializeToOstream(&f)) return IoError("writing '", tmp, "' failed");
    f.close();
    if (!f) return IoError("writing '", tmp, "' failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return IoError("cannot rename '", tmp, "' to '", path, "'");
  return Status::Ok();
}

}  // namespace amp
