// The amp IR: a Model owns one Graph of Nodes connected by Values.
//
// * A Value is defined exactly once: as a graph input, an initializer (constant
//   data owned by the graph) or the output of one node. It knows its producer
//   and every use (node, input slot), and carries a TensorType.
// * A Node has an op type, a domain, attributes, and ordered inputs/outputs;
//   an omitted optional input is a null Value*.
// * Graph owns its nodes and values; the mutation API below keeps producer and
//   use links consistent, so passes never edit the links by hand.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "compiler/shape.h"
#include "compiler/status.h"
#include "compiler/tensor.h"

namespace amp {

class Graph;
class Node;

struct Use {
  Node* node;
  int index;  // input slot
  bool operator==(const Use&) const = default;
};

class Value {
 public:
  const std::string& name() const { return name_; }
  const TensorType& type() const { return type_; }
  TensorType& mutable_type() { return type_; }
  void set_type(TensorType t) { type_ = std::move(t); }
  DType dtype() const { return type_.dtype; }

  Node* producer() const { return producer_; }
  int producer_index() const { return producer_index_; }
  const std::vector<Use>& uses() const { return uses_; }
  bool is_graph_input() const { return is_input_; }
  bool is_graph_output() const;
  bool has_initializer() const { return initializer_ != nullptr; }
  const Tensor* initializer() const { return initializer_.get(); }
  Graph* graph() const { return graph_; }

 private:
  friend class Graph;
  friend class Node;
  Value(Graph* g, std::string name) : graph_(g), name_(std::move(name)) {}
  Graph* graph_;
  std::string name_;
  TensorType type_;
  Node* producer_ = nullptr;
  int producer_index_ = -1;
  std::vector<Use> uses_;
  bool is_input_ = false;
  std::unique_ptr<Tensor> initializer_;
  std::list<std::unique_ptr<Value>>::iterator self_;
};

struct Attribute {
  enum class Kind { kFloat, kInt, kString, kTensor, kFloats, kInts, kStrings };
  Kind kind = Kind::kInt;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;

  static Attribute Int(int64_t v);
  static Attribute Float(float v);
  static Attribute String(std::string v);
  static Attribute Ints(std::vector<int64_t> v);
  static Attribute Floats(std::vector<float> v);
  static Attribute FromTensor(Tensor v);
};

// The compute type chosen for a node: kFloat16, kBFloat16 or kFloat32
// (kUndefined: not decided, e.g. shape computations), and the rule that
// chose it (what the precision report prints).
struct PrecisionDecision {
  DType compute = DType::kUndefined;
  std::string rule;
  bool decided() const { return compute != DType::kUndefined; }
  // "fp16", "bf16", "fp32", or "" when not decided (for printing only).
  std::string name() const;
};

// Who made a node: the model, or insert-casts (a Cast at a precision
// boundary, or a constant converted at compile time).
enum class NodeOrigin { kModel, kInsertedCast, kConvertedConstant };

class Node {
 public:
  const std::string& op_type() const { return op_type_; }
  const std::string& domain() const { return domain_; }
  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }
  // "node 'name' (Op)" or "node #3 (Op)" for messages.
  std::string Describe() const;

  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  Value* input(size_t i) const { return i < inputs_.size() ? inputs_[i] : nullptr; }
  Value* output(size_t i) const { return outputs_[i]; }
  size_t num_inputs() const { return inputs_.size(); }
  size_t num_outputs() const { return outputs_.size(); }
  // Rewires input slot i (nullptr omits it), keeping use lists consistent.
  void SetInput(size_t i, Value* v);
  void AddInput(Value* v);

  const std::map<std::string, Attribute>& attributes() const { return attrs_; }
  bool HasAttr(const std::string& n) const { return attrs_.count(n) != 0; }
  const Attribute* FindAttr(const std::string& n) const;
  int64_t GetInt(const std::string& n, int64_t def) const;
  float GetFloat(const std::string& n, float def) const;
  std::string GetString(const std::string& n, const std::string& def) const;
  std::vector<int64_t> GetInts(const std::string& n, std::vector<int64_t> def = {}) const;
  void SetAttr(const std::string& n, Attribute a) { attrs_[n] = std::move(a); }
  void EraseAttr(const std::string& n) { attrs_.erase(n); }

  Graph* graph() const { return graph_; }

  // What the precision passes decided (typed, never parsed back from text):
  // written by paint-precision and by passes that pin their nodes to FP32,
  // read by insert-casts and the report. Printed by the text printer, never
  // exported to ONNX.
  const PrecisionDecision& precision() const { return precision_; }
  void set_precision(DType compute, std::string rule) { precision_ = {compute, std::move(rule)}; }
  NodeOrigin origin() const { return origin_; }
  void set_origin(NodeOrigin o) { origin_ = o; }

 private:
  friend class Graph;
  Node(Graph* g, std::string op_type, std::string domain)
      : graph_(g), op_type_(std::move(op_type)), domain_(std::move(domain)) {}
  Graph* graph_;
  std::string op_type_;
  std::string domain_;
  std::string name_;
  std::vector<Value*> inputs_;
  std::vector<Value*> outputs_;
  std::map<std::string, Attribute> attrs_;
  PrecisionDecision precision_;
  NodeOrigin origin_ = NodeOrigin::kModel;
  std::list<std::unique_ptr<Node>>::iterator self_;
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  std::string name;
  std::string doc_string;

  // ---- lookup ----
  Value* FindValue(const std::string& name) const;
  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  // Values with constant data, in insertion order.
  std::vector<Value*> initializers() const;
  size_t num_nodes() const { return nodes_.size(); }
  // Nodes in their stored order (a topological order after TopologicalSort).
  std::vector<Node*> nodes() const;

  // ---- creation ----
  // A fresh name "<hint>", or "<hint>_<k>" if taken.
  std::string UniqueName(const std::string& hint);
  // Creates a value named exactly `name`; error if the name is taken.
  StatusOr<Value*> CreateValue(const std::string& name);
  Value* AddInput(const std::string& name, TensorType type);
  Value* AddInitializer(const std::string& name, Tensor t);
  // A Constant node holding `t`; its output is named from `name_hint`.
  Value* AddConstant(const std::string& name_hint, Tensor t);
  // A scalar Constant of `dtype` (any numeric type).
  Value* AddScalar(const std::string& name_hint, DType dtype, double v);
  void AddOutput(Value* v) { outputs_.push_back(v); }
  void SetOutput(size_t i, Value* v) { outputs_[i] = v; }
  void ClearOutputs() { outputs_.clear(); }
  // Appends a node whose outputs are new values named from `output_names`
  // (made unique). Inputs may be null (omitted optional).
  Node* AddNode(const std::string& op_type, const std::vector<Value*>& inputs,
                const std::vector<std::string>& output_names, const std::string& domain = "");
  // Creates a node with outputs that are existing, not-yet-defined values
  // (used by the importer, where names are fixed by the file).
  Node* AddNodeWithOutputs(const std::string& op_type, const std::string& domain,
                           const std::vector<Value*>& inputs, const std::vector<Value*>& outputs);
  // Gives `v` a new name; error if the name is taken.
  Status RenameValue(Value* v, const std::string& new_name);
  // Appends a new output value to `node` (an optional output it did not
  // produce before, such as MaxPool's Indices).
  Value* AddNodeOutput(Node* node, const std::string& name_hint);
  // Moves `node` to just before `before` in the node order.
  void MoveBefore(Node* node, Node* before);
  // Moves `node` to the end of the node order.
  void MoveToEnd(Node* node);

  // ---- mutation ----
  // Every use of `from` (node inputs and graph outputs) now reads `to`.
  void ReplaceAllUsesWith(Value* from, Value* to);
  // Erases a node whose outputs have no uses and are not graph outputs; its
  // output values are erased too.
  void EraseNode(Node* node);
  // What a fusion does once its node is built: each (old, now) pair's `now`
  // takes old's type, its readers and then its name; the `replaced` nodes
  // (whose outputs nothing reads once that is done, in any order) are
  // erased. Error when one of them is still read.
  Status Substitute(const std::vector<std::pair<Value*, Value*>>& results,
                    std::vector<Node*> replaced);
  // Turns `v` (a node output) into an initializer holding `t`: the producer
  // loses that output slot's meaning, so call only before erasing it.
  void SetInitializerData(Value* v, Tensor t);
  void EraseInitializer(Value* v);  // v must have no uses and not be an output
  // Turns graph input `v` into an initializer holding `t` (a value bound for
  // good, e.g. a shape that must be known to plan memory).
  void FreezeInput(Value* v, Tensor t);
  // Turns a single-output node into a Constant holding `t`, keeping its
  // output value (name and uses); its inputs are released.
  void ReplaceWithConstant(Node* node, Tensor t);

  // Reorders nodes topologically (stable: keeps the current order where it
  // can). Error naming a node on the cycle if there is one.
  Status TopologicalSort();

  // A copy with the same names, types, order, attributes and precision decisions;
  // initializer data is shared until either copy writes it (Tensor's copy
  // on write).
  std::unique_ptr<Graph> Clone() const;

 private:
  std::list<std::unique_ptr<Node>> nodes_;
  std::list<std::unique_ptr<Value>> values_;
  std::unordered_map<std::string, Value*> by_name_;
  std::vector<Value*> inputs_;
  std::vector<Value*> outputs_;
  std::vector<Value*> initializer_order_;
  std::unordered_map<std::string, int> name_counters_;
  friend class Node;
  void EraseValue(Value* v);
  void RemoveUse(Value* v, Use u);
};

enum class OptimizerKind { kNone, kSgd, kAdam, kAdamW };
const char* OptimizerKindName(OptimizerKind k);  // "none", "sgd", "adam", "adamw"
// The kind a name gives ("sgd", "adam", "adamw"); kNone for any other.
OptimizerKind ParseOptimizerKind(std::string_view name);

// The optimizer of a training step, as PyTorch's hyperparameters, and the
// values it reads and keeps for each parameter (names, as TrainingInfo's).
struct OptimizerInfo {
  OptimizerKind kind = OptimizerKind::kNone;
  std::string lr;         // the learning-rate graph input (a float scalar)
  double default_lr = 0;  // the --lr it was compiled with
  float momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  struct Param {
    std::string param;            // the FP32 master weight (an initializer)
    std::string grad;             // the gradient the update reads (FP32 when built)
    std::string exp_avg;          // Adam/AdamW first moment (an initializer)
    std::string exp_avg_sq;       // Adam/AdamW second moment
    std::string momentum_buffer;  // SGD with momentum
  };
  std::vector<Param> params;
};

// What makes a model a training step (empty for a forward model). Values
// are named, not pointed to, so that passes may rebuild them freely; the
// verifier checks that every name resolves.
struct TrainingInfo {
  std::string loss;                              // the scalar loss value
  std::vector<std::string> trainable;            // parameters (float initializers)
  std::map<std::string, std::string> gradients;  // parameter -> its gradient value
  // State (an initializer) -> the value that replaces it after the step.
  std::vector<std::pair<std::string, std::string>> updates;
  // The model's own outputs before the loss was attached, with their types:
  // the forward graph of the exported training model.
  std::vector<std::pair<std::string, DType>> forward_outputs;
  std::string grad_seed;  // the Constant 1.0 autodiff starts from (loss scaling rescales it)
  std::string skip_step;  // bool scalar: true skips the optimizer update (non-finite gradients)
  // The pieces of state whose meaning others need, by the names the passes
  // gave them (empty when absent): loss-scaling's scale S (state when
  // dynamic, a constant when static) and its growth tracker, the optimizer's
  // step count. Read by the runtime, checkpoint validation and fuse-optimizer.
  std::string loss_scale;
  std::string growth_tracker;
  std::string optimizer_step;
  bool has_optimizer = false;
  // Loss scaling's pieces (empty without it): 1/S (empty again once
  // fuse-unscale takes it inside its node), and each parameter's gradient
  // after unscaling (parameter -> value). skip_step is its found-inf flag.
  // Written by loss-scaling, read by fuse-unscale.
  std::string inverse_scale;
  std::map<std::string, std::string> unscaled;
  // Dynamic loss scaling's rule (GradScaler's update), written by
  // loss-scaling and read by fuse-loss-scale: set when the scale is dynamic.
  struct LossScaleRule {
    float growth_factor = 2.0f, backoff_factor = 0.5f;
    int64_t growth_interval = 0;               // 0: no dynamic rule
    float min_scale = 0.0f, max_scale = 0.0f;  // 0: no clamp
  } loss_scale_rule;
  // The optimizer's typed description, written by the optimizer pass and
  // read by fuse-optimizer, amp-train and the report: fusion replaces the
  // update this describes; it never matches the formula.
  OptimizerInfo optimizer;
  // Each parameter's half copy (parameter -> the Cast's value), written by
  // insert-casts: the FP32 master stays the state.
  std::map<std::string, std::string> half_copies;
  bool active() const { return !loss.empty(); }
  // Renames `from` to `to` wherever the description names it (a pass that
  // replaces a value it names keeps the description true).
  void Rename(const std::string& from, const std::string& to);
  // Every value name the description holds (non-empty), and a visit of each
  // name field (what Rename and NamedValues share).
  std::set<std::string> NamedValues() const;
  void VisitNames(const std::function<void(std::string&)>& f);
};

// Whether an initializer's name is one exporters give the constants they
// store as initializers, which no named_parameters() entry is ever called:
// dynamo's lifted constants (val_12, _tensor_constant0) and TorchScript's
// folded ones (onnx::Mul_7, /block/Constant_output_0). Such values are not
// parameters (autodiff does not train them; paint-precision does not treat
// them as FP32 weights).
bool IsExporterConstantName(const std::string& name);

// Whether `n` is a default-domain ("" or "ai.onnx") `op_type` node (false
// for a null `n`).
bool IsDefaultOp(const Node* n, std::string_view op_type);
// The node defining `v` if it is a default-domain `op_type` node, else null
// (also for a null `v`): one step of a pattern match.
Node* ProducerIf(const Value* v, std::string_view op_type);
// The static dims of `v`'s shape, or nullopt (no shape, a symbolic dim, a
// null `v`).
std::optional<std::vector<int64_t>> StaticDimsOf(const Value* v);

struct OpsetImport {
  std::string domain;
  int64_t version;
};

struct Model {
  int64_t ir_version = 8;
  std::vector<OpsetImport> opsets;
  std::string producer_name;
  std::string producer_version;
  std::string doc_string;
  std::map<std::string, std::string> metadata;
  std::string directory;  // folder the model was read from (external data root)
  std::unique_ptr<Graph> graph = std::make_unique<Graph>();
  TrainingInfo training;
  // Float initializers the exporter says are not parameters: the buffers and
  // lifted constants of the dynamo exporter's graph signature (RoPE's
  // inv_freq, say), which PyTorch does not train.
  std::set<std::string> exporter_non_parameters;

  // Opset version of `domain` ("" and "ai.onnx" are the default domain); 0 if absent.
  int64_t OpsetVersion(const std::string& domain) const;
};

// A deep copy (the graph cloned, initializer data shared copy-on-write).
Model CloneModel(const Model& m);

}  // namespace amp
