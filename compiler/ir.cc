#include "compiler/ir.h"

#include <algorithm>
#include <queue>
#include <regex>
#include <unordered_set>

namespace amp {

// ---------------- Value / Attribute / Node ----------------

bool Value::is_graph_output() const {
  const auto& outs = graph_->outputs();
  return std::find(outs.begin(), outs.end(), this) != outs.end();
}

Attribute Attribute::Int(int64_t v) {
  Attribute a;
  a.kind = Kind::kInt;
  a.i = v;
  return a;
}
Attribute Attribute::Float(float v) {
  Attribute a;
  a.kind = Kind::kFloat;
  a.f = v;
  return a;
}
Attribute Attribute::String(std::string v) {
  Attribute a;
  a.kind = Kind::kString;
  a.s = std::move(v);
  return a;
}
Attribute Attribute::Ints(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Kind::kInts;
  a.ints = std::move(v);
  return a;
}
Attribute Attribute::Floats(std::vector<float> v) {
  Attribute a;
  a.kind = Kind::kFloats;
  a.floats = std::move(v);
  return a;
}
Attribute Attribute::FromTensor(Tensor v) {
  Attribute a;
  a.kind = Kind::kTensor;
  a.t = std::move(v);
  return a;
}

std::string Node::Describe() const {
  if (!name_.empty()) return StrCat("node '", name_, "' (", op_type_, ")");
  int index = 0;
  for (const Node* n : graph_->nodes()) {
    if (n == this) break;
    ++index;
  }
  std::string out = outputs_.empty() ? "" : StrCat(" -> '", outputs_[0]->name(), "'");
  return StrCat("node #", index, " (", op_type_, out, ")");
}

void Node::SetInput(size_t i, Value* v) {
  AMP_CHECK(i < inputs_.size());
  if (inputs_[i] != nullptr) graph_->RemoveUse(inputs_[i], Use{this, static_cast<int>(i)});
  inputs_[i] = v;
  if (v != nullptr) v->uses_.push_back(Use{this, static_cast<int>(i)});
}

void Node::AddInput(Value* v) {
  inputs_.push_back(nullptr);
  SetInput(inputs_.size() - 1, v);
}

const Attribute* Node::FindAttr(const std::string& n) const {
  auto it = attrs_.find(n);
  return it == attrs_.end() ? nullptr : &it->second;
}
int64_t Node::GetInt(const std::string& n, int64_t def) const {
  const Attribute* a = FindAttr(n);
  return a && a->kind == Attribute::Kind::kInt ? a->i : def;
}
float Node::GetFloat(const std::string& n, float def) const {
  const Attribute* a = FindAttr(n);
  return a && a->kind == Attribute::Kind::kFloat ? a->f : def;
}
std::string Node::GetString(const std::string& n, const std::string& def) const {
  const Attribute* a = FindAttr(n);
  return a && a->kind == Attribute::Kind::kString ? a->s : def;
}
std::vector<int64_t> Node::GetInts(const std::string& n, std::vector<int64_t> def) const {
  const Attribute* a = FindAttr(n);
  return a && a->kind == Attribute::Kind::kInts ? a->ints : def;
}

// ---------------- Graph ----------------

Value* Graph::FindValue(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<Value*> Graph::initializers() const { return initializer_order_; }

std::vector<Node*> Graph::nodes() const {
  std::vector<Node*> out;
  out.reserve(nodes_.size());
  for (const auto& n : nodes_) out.push_back(n.get());
  return out;
}

std::string Graph::UniqueName(const std::string& hint) {
  std::string base = hint.empty() ? "v" : hint;
  if (!by_name_.count(base)) return base;
  int& k = name_counters_[base];
  std::string candidate;
  do {
    candidate = StrCat(base, "_", ++k);
  } while (by_name_.count(candidate));
  return candidate;
}

StatusOr<Value*> Graph::CreateValue(const std::string& name) {
  if (name.empty()) return InvalidArgument("a value needs a non-empty name");
  if (by_name_.count(name)) return InvalidArgument("value '", name, "' is defined more than once");
  values_.push_back(std::unique_ptr<Value>(new Value(this, name)));
  Value* v = values_.back().get();
  v->self_ = std::prev(values_.end());
  by_name_[name] = v;
  return v;
}

Value* Graph::AddInput(const std::string& name, TensorType type) {
  Value* v = *CreateValue(UniqueName(name));
  v->is_input_ = true;
  v->type_ = std::move(type);
  inputs_.push_back(v);
  return v;
}

Value* Graph::AddInitializer(const std::string& name, Tensor t) {
  Value* v = *CreateValue(UniqueName(name));
  SetInitializerData(v, std::move(t));
  return v;
}

Value* Graph::AddConstant(const std::string& name_hint, Tensor t) {
  Node* c = AddNode("Constant", {}, {name_hint});
  c->SetAttr("value", Attribute::FromTensor(std::move(t)));
  return c->output(0);
}

Value* Graph::AddScalar(const std::string& name_hint, DType dtype, double v) {
  Tensor t(dtype, {});
  t.SetDouble(0, v);
  return AddConstant(name_hint, std::move(t));
}

void Graph::SetInitializerData(Value* v, Tensor t) {
  if (!v->initializer_) initializer_order_.push_back(v);
  v->type_.dtype = t.dtype();
  v->type_.shape = ShapeFromDims(t.dims());
  v->initializer_ = std::make_unique<Tensor>(std::move(t));
}

bool IsDefaultOp(const Node* n, std::string_view op_type) {
  return n && n->op_type() == op_type && (n->domain().empty() || n->domain() == "ai.onnx");
}

Node* ProducerIf(const Value* v, std::string_view op_type) {
  Node* n = v ? v->producer() : nullptr;
  return IsDefaultOp(n, op_type) ? n : nullptr;
}

std::optional<std::vector<int64_t>> StaticDimsOf(const Value* v) {
  if (!v || !v->type().shape) return std::nullopt;
  return StaticDims(*v->type().shape);
}

std::unique_ptr<Graph> Graph::Clone() const {
  auto g = std::make_unique<Graph>();
  g->name = name;
  g->doc_string = doc_string;
  auto copy = [&](const Value* v) {
    Value* c = *g->CreateValue(v->name_);
    c->type_ = v->type_;
    return c;
  };
  // Every value first (nodes may be out of order), then the links.
  for (const Value* v : inputs_) {
    Value* c = copy(v);
    c->is_input_ = true;
    g->inputs_.push_back(c);
  }
  for (const Value* v : initializer_order_) g->SetInitializerData(copy(v), *v->initializer_);
  for (const auto& n : nodes_)
    for (const Value* out : n->outputs_)
      if (out) copy(out);
  for (const auto& n : nodes_) {
    std::vector<Value*> ins, outs;
    for (const Value* in : n->inputs_) ins.push_back(in ? g->by_name_.at(in->name_) : nullptr);
    for (const Value* out : n->outputs_) outs.push_back(g->by_name_.at(out->name_));
    Node* c = g->AddNodeWithOutputs(n->op_type_, n->domain_, ins, outs);
    c->name_ = n->name_;
    c->attrs_ = n->attrs_;
    c->precision_ = n->precision_;
    c->origin_ = n->origin_;
  }
  for (const Value* v : outputs_) g->outputs_.push_back(g->by_name_.at(v->name_));
  g->name_counters_ = name_counters_;
  return g;
}

std::string PrecisionDecision::name() const {
  return decided() ? PrecisionName(compute) : std::string();
}

const char* OptimizerKindName(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::kSgd:
      return "sgd";
    case OptimizerKind::kAdam:
      return "adam";
    case OptimizerKind::kAdamW:
      return "adamw";
    default:
      return "none";
  }
}

OptimizerKind ParseOptimizerKind(std::string_view name) {
  for (OptimizerKind k : {OptimizerKind::kSgd, OptimizerKind::kAdam, OptimizerKind::kAdamW})
    if (name == OptimizerKindName(k)) return k;
  return OptimizerKind::kNone;
}

void TrainingInfo::VisitNames(const std::function<void(std::string&)>& f) {
  for (std::string* s : {&loss, &grad_seed, &skip_step, &loss_scale, &growth_tracker,
                         &optimizer_step, &inverse_scale, &optimizer.lr})
    f(*s);
  for (std::string& s : trainable) f(s);
  for (auto* m : {&gradients, &unscaled, &half_copies})
    for (auto& [k, v] : *m) f(v);
  for (auto& [state, update] : updates) f(update);
  for (auto& [name, type] : forward_outputs) f(name);
  for (auto& p : optimizer.params)
    for (std::string* s : {&p.param, &p.grad, &p.exp_avg, &p.exp_avg_sq, &p.momentum_buffer}) f(*s);
}

void TrainingInfo::Rename(const std::string& from, const std::string& to) {
  VisitNames([&](std::string& s) {
    if (s == from) s = to;
  });
}

std::set<std::string> TrainingInfo::NamedValues() const {
  std::set<std::string> names;
  TrainingInfo copy = *this;
  copy.VisitNames([&](std::string& s) {
    if (!s.empty()) names.insert(s);
  });
  return names;
}

bool IsExporterConstantName(const std::string& name) {
  static const std::regex lifted(R"(^(val_\d+|_tensor_constant\d+)$)");
  return name.find("::") != std::string::npos || (!name.empty() && name[0] == '/') ||
         std::regex_match(name, lifted);
}

Model CloneModel(const Model& m) {
  Model c;
  c.ir_version = m.ir_version;
  c.opsets = m.opsets;
  c.producer_name = m.producer_name;
  c.producer_version = m.producer_version;
  c.doc_string = m.doc_string;
  c.metadata = m.metadata;
  c.directory = m.directory;
  c.graph = m.graph->Clone();
  c.training = m.training;
  return c;
}

void Graph::FreezeInput(Value* v, Tensor t) {
  AMP_CHECK(v->is_input_);
  inputs_.erase(std::find(inputs_.begin(), inputs_.end(), v));
  v->is_input_ = false;
  SetInitializerData(v, std::move(t));
}

Node* Graph::AddNode(const std::string& op_type, const std::vector<Value*>& inputs,
                     const std::vector<std::string>& output_names, const std::string& domain) {
  std::vector<Value*> outs;
  for (const auto& n : output_names) outs.push_back(*CreateValue(UniqueName(n)));
  return AddNodeWithOutputs(op_type, domain, inputs, outs);
}

Node* Graph::AddNodeWithOutputs(const std::string& op_type, const std::string& domain,
                                const std::vector<Value*>& inputs,
                                const std::vector<Value*>& outputs) {
  nodes_.push_back(std::unique_ptr<Node>(new Node(this, op_type, domain)));
  Node* node = nodes_.back().get();
  node->self_ = std::prev(nodes_.end());
  for (Value* in : inputs) node->AddInput(in);
  for (Value* out : outputs) {
    AMP_CHECK(out->producer_ == nullptr && !out->is_input_ && !out->initializer_);
    out->producer_ = node;
    out->producer_index_ = static_cast<int>(node->outputs_.size());
    node->outputs_.push_back(out);
  }
  return node;
}

Status Graph::RenameValue(Value* v, const std::string& new_name) {
  if (v->name_ == new_name) return Status::Ok();
  if (new_name.empty() || by_name_.count(new_name))
    return InvalidArgument("cannot rename '", v->name_, "' to '", new_name, "': the name is taken");
  by_name_.erase(v->name_);
  v->name_ = new_name;
  by_name_[new_name] = v;
  return Status::Ok();
}

Value* Graph::AddNodeOutput(Node* node, const std::string& name_hint) {
  Value* v = *CreateValue(UniqueName(name_hint));
  v->producer_ = node;
  v->producer_index_ = static_cast<int>(node->outputs_.size());
  node->outputs_.push_back(v);
  return v;
}

void Graph::MoveBefore(Node* node, Node* before) {
  nodes_.splice(before->self_, nodes_, node->self_);
}

void Graph::MoveToEnd(Node* node) { nodes_.splice(nodes_.end(), nodes_, node->self_); }

void Graph::RemoveUse(Value* v, Use u) {
  auto it = std::find(v->uses_.begin(), v->uses_.end(), u);
  AMP_CHECK(it != v->uses_.end());
  v->uses_.erase(it);
}

void Graph::ReplaceAllUsesWith(Value* from, Value* to) {
  AMP_CHECK(from != to);
  std::vector<Use> uses = from->uses_;
  for (const Use& u : uses) u.node->SetInput(u.index, to);
  for (auto& out : outputs_)
    if (out == from) out = to;
}

void Graph::EraseValue(Value* v) {
  AMP_CHECK(v->uses_.empty());
  by_name_.erase(v->name_);
  if (v->initializer_) std::erase(initializer_order_, v);
  values_.erase(v->self_);
}

void Graph::EraseNode(Node* node) {
  for (Value* out : node->outputs_) {
    AMP_CHECK(out->uses_.empty() && !out->is_graph_output());
  }
  for (size_t i = 0; i < node->inputs_.size(); ++i) node->SetInput(i, nullptr);
  for (Value* out : node->outputs_) EraseValue(out);
  nodes_.erase(node->self_);
}

Status Graph::Substitute(const std::vector<std::pair<Value*, Value*>>& results,
                         std::vector<Node*> replaced) {
  std::vector<std::string> names;
  for (auto [old, now] : results) {
    now->set_type(old->type());
    names.push_back(old->name());
    ReplaceAllUsesWith(old, now);
  }
  // Consumers before producers: erase what is unread until nothing is left.
  auto unread = [](const Node* n) {
    for (const Value* out : n->outputs())
      if (!out->uses().empty() || out->is_graph_output()) return false;
    return true;
  };
  while (!replaced.empty()) {
    auto it = std::find_if(replaced.begin(), replaced.end(), unread);
    if (it == replaced.end())
      return Internal("cannot erase ", replaced.front()->Describe(),
                      ": its outputs are still read");
    EraseNode(*it);
    replaced.erase(it);
  }
  for (size_t k = 0; k < results.size(); ++k)
    AMP_RETURN_IF_ERROR(RenameValue(results[k].second, names[k]));
  return Status::Ok();
}

void Graph::EraseInitializer(Value* v) {
  AMP_CHECK(v->initializer_ && v->uses_.empty() && !v->is_graph_output() && !v->is_input_);
  EraseValue(v);
}

void Graph::ReplaceWithConstant(Node* node, Tensor t) {
  AMP_CHECK(node->num_outputs() == 1);
  for (size_t i = 0; i < node->inputs_.size(); ++i) node->SetInput(i, nullptr);
  node->inputs_.clear();
  node->op_type_ = "Constant";
  node->domain_.clear();
  node->attrs_.clear();
  Value* out = node->outputs_[0];
  out->type_.dtype = t.dtype();
  out->type_.shape = ShapeFromDims(t.dims());
  node->attrs_["value"] = Attribute::FromTensor(std::move(t));
}

Status Graph::TopologicalSort() {
  // Kahn's algorithm with a queue seeded in current order keeps the order stable.
  std::unordered_map<Node*, int> pending;
  std::vector<Node*> order = nodes();
  std::unordered_map<Node*, size_t> position;
  for (size_t i = 0; i < order.size(); ++i) position[order[i]] = i;
  auto cmp = [&](Node* a, Node* b) { return position[a] > position[b]; };
  std::priority_queue<Node*, std::vector<Node*>, decltype(cmp)> ready(cmp);
  for (Node* n : order) {
    int deps = 0;
    for (Value* in : n->inputs_)
      if (in && in->producer_) ++deps;
    pending[n] = deps;
    if (deps == 0) ready.push(n);
  }
  std::vector<Node*> sorted;
  sorted.reserve(order.size());
  while (!ready.empty()) {
    Node* n = ready.top();
    ready.pop();
    sorted.push_back(n);
    for (Value* out : n->outputs_)
      for (const Use& u : out->uses_)
        if (--pending[u.node] == 0) ready.push(u.node);
  }
  if (sorted.size() != order.size()) {
    for (Node* n : order)
      if (pending[n] > 0) return InvalidArgument("the graph has a cycle through ", n->Describe());
  }
  for (Node* n : sorted) nodes_.splice(nodes_.end(), nodes_, n->self_);
  return Status::Ok();
}

int64_t Model::OpsetVersion(const std::string& domain) const {
  for (const auto& o : opsets) {
    bool want_default = domain.empty() || domain == "ai.onnx";
    bool is_default = o.domain.empty() || o.domain == "ai.onnx";
    if (want_default ? is_default : o.domain == domain) return o.version;
  }
  return 0;
}

}  // namespace amp
