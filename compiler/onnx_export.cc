#include "compiler/onnx_export.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_set>

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
        if (!data_file_)
          return IoError("cannot write external data file '", data_path_,
                         "': ", std::strerror(errno));
      }
      // Align each tensor to 64 bytes so that it can be mapped and read directly.
      while (offset_ % 64) {
        data_file_.put('\0');
        ++offset_;
      }
      data_file_.write(reinterpret_cast<const char*>(t.data()),
                       static_cast<std::streamsize>(t.nbytes()));
      if (!data_file_)
        return IoError("writing external data file '", data_path_,
                       "' failed: ", std::strerror(errno));
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

// Writes `nodes` with the given interface into `gp`. Values in `cast_back`
// are graph outputs computed in another type than the model declared: they
// are written under a suffixed name and a Cast restores name and type.
Status WriteGraph(const Graph& g, const std::vector<const Node*>& nodes,
                  const std::vector<const Value*>& inputs, const std::vector<const Value*>& outputs,
                  const std::map<const Value*, DType>& declared, bool with_initializers,
                  const ExportOptions& options, Exporter& ex, onnx::GraphProto* gp) {
  gp->set_name(g.name.empty() ? "main" : g.name);
  if (!g.doc_string.empty()) gp->set_doc_string(g.doc_string);
  std::map<const Value*, std::string> renamed;
  for (const auto& [v, dtype] : declared)
    if (v->dtype() != dtype) renamed[v] = v->name() + "_computed";
  auto name_of = [&](const Value* v) {
    auto it = renamed.find(v);
    return it == renamed.end() ? v->name() : it->second;
  };
  std::unordered_set<const Value*> outs(outputs.begin(), outputs.end());
  for (const Value* in : inputs) {
    auto* vi = gp->add_input();
    vi->set_name(in->name());
    ExportType(in->type(), vi->mutable_type());
  }
  if (with_initializers)
    for (Value* init : g.initializers())
      AMP_RETURN_IF_ERROR(
          ex.ExportTensor(*init->initializer(), init->name(), gp->add_initializer()));
  for (const Node* n : nodes) {
    auto* np = gp->add_node();
    np->set_op_type(n->op_type());
    if (!n->domain().empty()) np->set_domain(n->domain());
    if (!n->name().empty()) np->set_name(n->name());
    for (Value* in : n->inputs()) np->add_input(in ? name_of(in) : "");
    for (Value* out : n->outputs()) {
      // A private name for an omitted optional output stays omitted.
      bool unused = out->uses().empty() && !outs.count(out) && out->name().rfind("unused_", 0) == 0;
      np->add_output(unused ? "" : name_of(out));
    }
    for (const auto& [name, attr] : n->attributes())
      AMP_RETURN_IF_ERROR(ExportAttribute(name, attr, ex, np->add_attribute()));
    if (options.value_info) {
      for (Value* out : n->outputs()) {
        if ((outs.count(out) && !renamed.count(out)) || out->dtype() == DType::kUndefined ||
            out->uses().empty())
          continue;
        auto* vi = gp->add_value_info();
        vi->set_name(name_of(out));
        ExportType(out->type(), vi->mutable_type());
      }
    }
  }
  for (const auto& [v, new_name] : renamed) {
    auto* np = gp->add_node();
    np->set_op_type("Cast");
    np->add_input(new_name);
    np->add_output(v->name());
    auto* a = np->add_attribute();
    a->set_name("to");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(static_cast<int64_t>(declared.at(v)));
  }
  for (const Value* out : outputs) {
    auto* vi = gp->add_output();
    vi->set_name(out->name());
    if (out->dtype() == DType::kUndefined)
      return InvalidArgument("graph output '", out->name(), "' has no known element type");
    TensorType type = out->type();
    if (auto it = declared.find(out); it != declared.end()) type.dtype = it->second;
    ExportType(type, vi->mutable_type());
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
    // Through nlohmann::json, so that any name (quotes, backslashes, bytes
    // that are not UTF-8) stays valid JSON.
    nlohmann::json j;
    j["loss"] = model.training.loss;
    if (!model.training.skip_step.empty()) j["skip_step"] = model.training.skip_step;
    j["updates"] = nlohmann::json::array();
    for (const auto& [state, update] : model.training.updates)
      j["updates"].push_back({state, update});
    j["trainable"] = model.training.trainable;
    for (const auto& [key, name] :
         {std::pair<const char*, const std::string*>{"loss_scale", &model.training.loss_scale},
          {"growth_tracker", &model.training.growth_tracker},
          {"optimizer_step", &model.training.optimizer_step}})
      if (!name->empty()) j[key] = *name;
    const TrainingInfo& t = model.training;
    if (!t.unscaled.empty()) {
      j["inverse_scale"] = t.inverse_scale;
      j["unscaled"] = t.unscaled;
    }
    if (!t.half_copies.empty()) j["half_copies"] = t.half_copies;
    if (const auto& r = t.loss_scale_rule; r.growth_interval > 0)
      j["loss_scale_rule"] = {{"growth_factor", r.growth_factor},
                              {"backoff_factor", r.backoff_factor},
                              {"growth_interval", r.growth_interval},
                              {"min_scale", r.min_scale},
                              {"max_scale", r.max_scale}};
    const OptimizerInfo& o = t.optimizer;
    if (o.kind != OptimizerKind::kNone) {
      nlohmann::json params = nlohmann::json::array();
      for (const auto& p : o.params) {
        nlohmann::json e = {{"param", p.param}, {"grad", p.grad}};
        for (auto [key, name] : {std::pair<const char*, const std::string*>{"exp_avg", &p.exp_avg},
                                 {"exp_avg_sq", &p.exp_avg_sq},
                                 {"momentum_buffer", &p.momentum_buffer}})
          if (!name->empty()) e[key] = *name;
        params.push_back(e);
      }
      j["optimizer"] = {{"kind", OptimizerKindName(o.kind)},
                        {"lr", o.lr},
                        {"default_lr", o.default_lr},
                        {"momentum", o.momentum},
                        {"dampening", o.dampening},
                        {"nesterov", o.nesterov},
                        {"weight_decay", o.weight_decay},
                        {"beta1", o.beta1},
                        {"beta2", o.beta2},
                        {"eps", o.eps},
                        {"params", params}};
      // Read by tools that know only ONNX (the tests' onnxruntime harness).
      metadata["amp.lr"] = StrCat(static_cast<float>(o.default_lr));
    }
    metadata["amp.training"] = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  for (const auto& [k, v] : metadata) {
    auto* p = proto.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  }
  const Graph& g = *model.graph;
  const TrainingInfo& t = model.training;
  if (!t.active() || t.updates.empty() || options.training_form == TrainingForm::kFunctional) {
    std::vector<const Value*> inputs(g.inputs().begin(), g.inputs().end());
    // Functional form: state in as inputs (initializers give the start).
    for (const auto& [state, update] : t.updates) inputs.push_back(g.FindValue(state));
    std::vector<const Value*> outputs(g.outputs().begin(), g.outputs().end());
    std::vector<Node*> node_list = g.nodes();
    std::vector<const Node*> nodes(node_list.begin(), node_list.end());
    AMP_RETURN_IF_ERROR(
        WriteGraph(g, nodes, inputs, outputs, {}, true, options, ex, proto.mutable_graph()));
  } else {
    // ONNX's training representation: the main graph is the forward model
    // (what computes the original outputs), training_info[0].algorithm is the
    // step, and update_binding says which output replaces which initializer.
    std::vector<const Value*> fwd_outputs;
    std::map<const Value*, DType> original;
    for (const auto& [name, dtype] : t.forward_outputs) {
      if (const Value* v = g.FindValue(name)) {
        fwd_outputs.push_back(v);
        original[v] = dtype;
      }
    }
    if (fwd_outputs.empty())
      return InvalidArgument("the training step has no forward output left to export");
    std::unordered_set<const Node*> needed;
    std::vector<const Node*> work;
    for (const Value* v : fwd_outputs)
      if (v->producer() && needed.insert(v->producer()).second) work.push_back(v->producer());
    while (!work.empty()) {
      const Node* n = work.back();
      work.pop_back();
      for (const Value* in : n->inputs())
        if (in && in->producer() && needed.insert(in->producer()).second)
          work.push_back(in->producer());
    }
    std::vector<const Node*> fwd_nodes;
    std::unordered_set<const Value*> read;
    for (const Node* n : g.nodes()) {
      if (!needed.count(n)) continue;
      fwd_nodes.push_back(n);
      for (const Value* in : n->inputs()) read.insert(in);
    }
    std::vector<const Value*> fwd_inputs;
    for (const Value* in : g.inputs())
      if (read.count(in)) fwd_inputs.push_back(in);
    AMP_RETURN_IF_ERROR(WriteGraph(g, fwd_nodes, fwd_inputs, fwd_outputs, original, true, options,
                                   ex, proto.mutable_graph()));
    auto* ti = proto.add_training_info();
    std::vector<const Value*> step_inputs(g.inputs().begin(), g.inputs().end());
    std::vector<const Value*> step_outputs(g.outputs().begin(), g.outputs().end());
    std::vector<Node*> node_list = g.nodes();
    std::vector<const Node*> all(node_list.begin(), node_list.end());
    AMP_RETURN_IF_ERROR(WriteGraph(g, all, step_inputs, step_outputs, {}, false, options, ex,
                                   ti->mutable_algorithm()));
    ti->mutable_algorithm()->set_name("training_step");
    for (const auto& [state, update] : t.updates) {
      auto* kv = ti->add_update_binding();
      kv->set_key(state);
      kv->set_value(update);
    }
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
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) return Internal("the model could not be serialized");
  return WriteFileAtomically(path, bytes);
}

bool IsSpecialFile(const std::string& path) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  return !ec && fs::exists(st) && !fs::is_regular_file(st) && !fs::is_directory(st);
}

Status WriteFileAtomically(const std::string& path, const std::string& bytes) {
  // A device or a FIFO (-o /dev/null) is written as it is: renaming a file
  // over it would replace the device.
  if (IsSpecialFile(path)) {
    std::ofstream f(path, std::ios::binary);
    if (!f) return IoError("cannot write '", path, "': ", std::strerror(errno));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.close();
    if (!f) return IoError("writing '", path, "' failed: ", std::strerror(errno));
    return Status::Ok();
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return IoError("cannot write '", tmp, "': ", std::strerror(errno));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.close();
    if (!f) {
      std::remove(tmp.c_str());
      return IoError("writing '", tmp, "' failed: ", std::strerror(errno));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    return IoError("cannot rename '", tmp, "' to '", path, "': ", std::strerror(err));
  }
  return Status::Ok();
}

}  // namespace amp
