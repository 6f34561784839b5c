#include "codegen/executable.h"

#include <map>
#include <set>
#include <unordered_set>

#include "codegen/memory_plan.h"
#include "compiler/shape_inference.h"
#include "ops/op_def.h"
#include "passes/pipelines.h"

namespace amp {
namespace {

std::string DimsToString(const std::vector<int64_t>& dims) {
  return ShapeToString(ShapeFromDims(dims));
}

// Every symbolic dim of the inputs, from the dims given for them.
StatusOr<std::map<std::string, int64_t>> Bindings(const Graph& g, const SpecializeRequest& r) {
  std::map<std::string, int64_t> bindings;
  for (const Value* v : g.inputs()) {
    if (r.frozen.count(v->name())) continue;
    auto it = r.input_dims.find(v->name());
    if (it == r.input_dims.end())
      return InvalidArgument("input '", v->name(), "' (", v->type().ToString(),
                             ") is not bound; bind every input before Run");
    if (!v->type().shape) continue;
    const Shape& shape = *v->type().shape;
    if (shape.size() != it->second.size())
      return InvalidArgument("input '", v->name(), "' has shape ", DimsToString(it->second),
                             "; the model expects ", v->type().ToString());
    for (size_t i = 0; i < shape.size(); ++i) {
      if (!shape[i].is_symbolic()) continue;
      int64_t d = it->second[i];
      auto [pos, fresh] = bindings.emplace(shape[i].symbol(), d);
      if (!fresh && pos->second != d)
        return InvalidArgument("dim '", shape[i].symbol(), "' is ", pos->second,
                               " in one input and ", d, " in input '", v->name(), "'");
    }
  }
  return bindings;
}

}  // namespace

size_t Slot::nbytes() const {
  size_t n = DTypeSize(dtype);
  for (int64_t d : dims) n *= static_cast<size_t>(d);
  return n;
}

int Executable::Find(const std::string& name) const {
  auto it = slot_of.find(name);
  return it == slot_of.end() ? -1 : it->second;
}

StatusOr<Executable> Specialize(const Model& model, const SpecializeRequest& request,
                                const KernelSupport& backend) {
  AMP_ASSIGN_OR_RETURN(auto bindings, Bindings(*model.graph, request));
  Executable exe;
  exe.request = request;
  exe.backend = std::string(backend.name());
  exe.model = std::make_unique<Model>(CloneModel(model));
  Model& m = *exe.model;
  Graph& g = *m.graph;
  for (const auto& [name, value] : request.frozen) {
    Value* v = g.FindValue(name);
    if (v && v->is_graph_input()) g.FreezeInput(v, value);
  }
  // Unknown (unnamed) input dims take the given value directly.
  for (Value* v : g.inputs()) {
    const std::vector<int64_t>& dims = request.input_dims.at(v->name());
    if (!v->type().shape) {
      v->mutable_type().shape = ShapeFromDims(dims);
      continue;
    }
    Shape& shape = *v->mutable_type().shape;
    for (size_t i = 0; i < shape.size(); ++i)
      if (shape[i].is_unknown()) shape[i] = Dim(dims[i]);
  }
  pipelines::SpecializeOptions options;
  options.bindings = bindings;
  options.fuse_optimizer = request.fuse_optimizer;
  options.guard_nonfinite = request.guard_nonfinite && backend.HasKernel("ai.amp", "AnyNonFinite");
  options.fuse_loss_scale =
      request.fuse_optimizer && backend.HasKernel("ai.amp", "LossScaleUpdate");
  options.fuse_elementwise = request.fuse_elementwise &&
                             backend.HasKernel("ai.amp", "FusedElementwise") &&
                             backend.HasKernel("ai.amp", "MultiCast");
  options.fuse_norm_grad =
      request.fuse_elementwise && backend.HasKernel("ai.amp", "NormalizeGrad") &&
      backend.HasKernel("ai.amp", "LayerNormGrad") && backend.HasKernel("ai.amp", "BatchNormGrad");
  options.fold_output_casts =
      options.fuse_norm_grad && backend.HasKernel("ai.amp", "LayerNormalization");
  // (Every backend's MatMulT runs the epilogues, ops/gemm.cc.)
  options.fuse_gemm_epilogue = request.fuse_elementwise && backend.HasKernel("ai.amp", "MatMulT");
  options.fuse_cross_entropy =
      request.fuse_elementwise && backend.HasKernel("ai.amp", "SoftmaxCrossEntropyGrad");
  // (A backend without convolutions yet - CUDA before cuDNN - gets the form
  // its lowering will take, for the cost report; it runs neither.)
  options.fuse_conv_weight_grad =
      request.fuse_elementwise &&
      (backend.HasKernel("ai.amp", "ConvWeightGrad") || !backend.HasKernel("", "Conv"));
  options.fuse_max_pool_grad =
      request.fuse_elementwise &&
      (backend.HasKernel("ai.amp", "MaxPoolGrad") || !backend.HasKernel("", "MaxPool"));
  options.fuse_attention = request.fuse_elementwise && backend.HasKernel("ai.amp", "Attention") &&
                           backend.HasKernel("ai.amp", "AttentionGrad");
  options.link_attention_stats = options.fuse_attention && backend.AttentionGradReadsForward();
  options.keep.insert(request.keep.begin(), request.keep.end());
  PassPipeline pipeline = pipelines::Specialize(options);
  PipelineDebug debug;
  debug.disabled = request.disabled_passes;
  pipeline.set_debug(debug);
  AMP_RETURN_IF_ERROR(pipeline.Run(m).status());
  AMP_RETURN_IF_ERROR(RunShapeInference(m));
  // Every value must now have a static shape, and every node a kernel.
  std::vector<Node*> nodes = g.nodes();
  for (const Node* n : nodes) {
    AMP_RETURN_IF_ERROR(backend.Supports(*n));
    for (const Value* out : n->outputs())
      if (!out->type().has_static_shape() || DTypeSize(out->dtype()) == 0)
        return Unimplemented(n->Describe(), ": output '", out->name(), "' is ",
                             out->type().ToString(),
                             "; the runtime needs a static shape for every value (it depends "
                             "on data, or on an input dim that was not bound)");
  }

  auto add_slot = [&](const Value* v, SlotKind kind) {
    Slot s;
    s.value = v;
    s.kind = kind;
    s.dtype = v->dtype();
    s.dims = v->has_initializer() ? v->initializer()->dims() : *StaticDims(*v->type().shape);
    exe.slot_of[v->name()] = static_cast<int>(exe.slots.size());
    exe.slots.push_back(std::move(s));
  };
  for (const Value* v : g.inputs()) add_slot(v, SlotKind::kInput);
  // An initializer of the model as given keeps its buffer (parameters and
  // state are updated in place); folding may have made new ones.
  for (const Value* v : g.initializers()) {
    const Value* given = model.graph->FindValue(v->name());
    bool persistent = given && given->has_initializer() &&
                      given->initializer()->dtype() == v->initializer()->dtype() &&
                      given->initializer()->dims() == v->initializer()->dims();
    if (DTypeSize(v->dtype()) == 0)
      return Unimplemented("initializer '", v->name(),
                           "' has an element type the runtime cannot hold");
    add_slot(v, persistent ? SlotKind::kPersistent : SlotKind::kConstant);
    if (persistent) exe.slots.back().buffer = v->name();
  }
  std::unordered_set<const Node*> constant_nodes;
  std::vector<const Node*> order;
  for (const Node* n : nodes) {
    if (n->op_type() == "Constant" && n->domain().empty()) {
      constant_nodes.insert(n);
      add_slot(n->output(0), SlotKind::kConstant);
    } else {
      order.push_back(n);
    }
  }
  // In-place state updates: the output that is a state's new value shares
  // the state's buffer when its op allows it and no later node reads the
  // old value.
  if (request.in_place_updates) {
    std::map<std::string, std::string> update_of(m.training.updates.begin(),
                                                 m.training.updates.end());
    // A state that is itself some state's new value must keep its old
    // value until the copies after the step.
    std::set<std::string> update_values;
    for (const auto& [state, update] : m.training.updates) update_values.insert(update);
    std::unordered_map<const Node*, size_t> position;
    for (size_t i = 0; i < order.size(); ++i) position[order[i]] = i;
    for (const Node* n : order) {
      const OpDef* def = FindOp(n->domain(), n->op_type());
      if (!def || !def->inplace) continue;
      for (auto [out_i, in_i] : def->inplace(*n)) {
        const Value* out = n->output(out_i);
        const Value* state = n->input(in_i);
        int s = state ? exe.Find(state->name()) : -1;
        if (s < 0 || exe.slots[s].kind != SlotKind::kPersistent || state->is_graph_output() ||
            update_values.count(state->name()))
          continue;
        auto u = update_of.find(state->name());
        if (u == update_of.end() || u->second != out->name() || out->dtype() != state->dtype() ||
            *StaticDims(*out->type().shape) != exe.slots[s].dims)
          continue;
        bool read_later = false;
        for (const Use& use : state->uses())
          read_later |=
              use.node != n && position.count(use.node) && position[use.node] > position[n];
        if (read_later || exe.slot_of.count(out->name())) continue;
        add_slot(out, SlotKind::kPersistent);
        exe.slots.back().buffer = state->name();
      }
    }
  }
  // Intermediates: the arena, planned by liveness.
  std::unordered_set<const Value*> keep(g.outputs().begin(), g.outputs().end());
  std::vector<std::string> extra = request.keep;
  if (!m.training.skip_step.empty()) extra.push_back(m.training.skip_step);
  if (!m.training.loss.empty()) extra.push_back(m.training.loss);
  for (const std::string& name : extra)
    if (const Value* v = g.FindValue(name)) keep.insert(v);
  for (const Value* v : keep) exe.kept.insert(v->name());
  auto in_arena = [&](const Value* v) { return !exe.slot_of.count(v->name()); };
  auto inplace = [](const Node& n) {
    const OpDef* def = FindOp(n.domain(), n.op_type());
    return def && def->inplace ? def->inplace(n) : std::vector<std::pair<int, int>>{};
  };
  MemoryPlan plan = PlanMemory(order, in_arena, keep, 64, inplace);
  exe.arena_bytes = plan.arena_bytes;
  exe.unshared_bytes = plan.unshared_bytes;
  // In node order, so that slot numbers do not depend on hashing.
  for (const Node* n : order)
    for (const Value* out : n->outputs()) {
      auto it = plan.offsets.find(out);
      if (it == plan.offsets.end()) continue;
      add_slot(out, SlotKind::kArena);
      exe.slots.back().offset = it->second;
    }
  // Every output gets a slot (kernels may write optional outputs nobody reads).
  auto call = [&](const Node* n) {
    Call c{n, KernelAttrs(*n), {}, {}};
    for (const Value* in : n->inputs()) c.inputs.push_back(in ? exe.slot_of.at(in->name()) : -1);
    for (const Value* out : n->outputs()) c.outputs.push_back(exe.slot_of.at(out->name()));
    return c;
  };
  for (const Node* n : nodes)
    if (constant_nodes.count(n)) exe.init.push_back(call(n));
  for (const Node* n : order) exe.program.push_back(call(n));
  for (const auto& [state, update] : m.training.updates) {
    int s = exe.Find(state), u = exe.Find(update);
    if (s < 0 || u < 0 || exe.slots[s].kind != SlotKind::kPersistent) continue;
    if (exe.slots[u].nbytes() != exe.slots[s].nbytes() || exe.slots[u].dtype != exe.slots[s].dtype)
      return Internal("update '", update, "' does not match state '", state, "'");
    exe.updates.emplace_back(s, u);
  }
  return exe;
}

}  // namespace amp
