// The compiler's last step: a model (a training step or a forward graph)
// specialized to one set of input shapes, with its buffer assignment and its
// program, ready for a backend to run. As in XLA, buffer assignment belongs
// to compilation: the runtime (runtime/executor.h) only allocates what an
// Executable says, binds pointers and runs its calls.
//
//   SpecializeRequest r;
//   r.input_dims = {{"input", {8, 32}}, {"labels", {8}}, {"lr", {}}};
//   AMP_ASSIGN_OR_RETURN(Executable exe, Specialize(model, r, backend));
//   // exe.program: the nodes of one step in order, each input and output a
//   // slot; exe.arena_bytes: the planned peak of every intermediate.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "compiler/ir.h"
#include "compiler/kernel_attrs.h"
#include "compiler/status.h"
#include "compiler/tensor.h"

namespace amp {

// What a backend can run, readable without a device (its kernel table).
class KernelSupport {
 public:
  virtual ~KernelSupport() = default;
  virtual std::string_view name() const = 0;
  // Ok when the backend has a kernel for `node`, else an error naming it.
  virtual Status Supports(const Node& node) const = 0;
  // Whether the backend has a kernel for an op the compiler makes itself
  // (ai.amp FusedElementwise: specialization fuses only for a backend that
  // runs it).
  virtual bool HasKernel(std::string_view domain, std::string_view op_type) const = 0;
  // Whether its ai.amp AttentionGrad takes the forward's O and softmax
  // statistics (link-attention-stats) rather than recomputing them.
  virtual bool AttentionGradReadsForward() const { return false; }
};

// Where a value of the specialized step lives.
enum class SlotKind {
  kInput,       // a graph input: a buffer the caller fills before each step
  kPersistent,  // an initializer of the model as given (parameters, state, constants)
  kConstant,    // data specialization made (a folded constant or a Constant node)
  kArena,       // an intermediate: at `offset` in the one arena
};

struct Slot {
  const Value* value = nullptr;  // in Executable::model
  SlotKind kind = SlotKind::kArena;
  size_t offset = 0;   // kArena only
  std::string buffer;  // kPersistent: the initializer whose buffer it is (itself, or the
                       // state an in-place update writes over)
  DType dtype = DType::kUndefined;
  std::vector<int64_t> dims;
  size_t nbytes() const;
};

// One kernel call: its node's op and attributes decoded once (what the
// kernel reads), and slot indices of its inputs (-1: omitted) and outputs.
struct Call {
  const Node* node = nullptr;  // in Executable::model, for tools and tests
  KernelAttrs attrs;
  std::vector<int> inputs;
  std::vector<int> outputs;
};

struct SpecializeRequest {
  // The dims of every graph input (they bind the symbolic dims).
  std::map<std::string, std::vector<int64_t>> input_dims;
  // Graph inputs held as constants of the specialization (integer inputs
  // whose values decide shapes).
  std::map<std::string, Tensor> frozen;
  // Values read after the step besides the graph outputs (kept live).
  std::vector<std::string> keep;
  // Replace the per-gradient unscale and the per-parameter Adam/AdamW
  // update by multi-tensor nodes (fuse-unscale, fuse-optimizer).
  bool fuse_optimizer = false;
  // Chains of elementwise ops into ai.amp FusedElementwise nodes
  // (fuse-elementwise, batch-casts) and LayerNormalization's backward into
  // ai.amp NormalizeGrad (fuse-norm-grad), and attention with its backward
  // into ai.amp Attention and AttentionGrad (fuse-attention), for a backend
  // with the kernels.
  bool fuse_elementwise = true;
  // Let an op that may (its record's `inplace`) write a piece of state's
  // new value over the old one, when nothing reads the old one later: no
  // arena bytes for it and no copy after the step. Off when the caller needs
  // the old state after the step (the runtime's non-finite guard, where the
  // step cannot skip itself).
  bool in_place_updates = true;
  // A step without loss scaling skips its own update when its loss or a
  // gradient is not finite (guard-nonfinite), for a backend with the
  // ai.amp AnyNonFinite kernel: Executable::model's skip_step is then set.
  bool guard_nonfinite = false;
  // Passes of the specialization pipeline not to run, by name (to compare a
  // fusion against the unfused step, as ONNX Runtime's disable-by-name).
  std::set<std::string, std::less<>> disabled_passes;
};

struct Executable {
  std::unique_ptr<Model> model;  // the specialized graph: every shape static
  std::vector<Slot> slots;       // one per value any call reads or writes
  std::unordered_map<std::string, int> slot_of;
  std::vector<Call> init;     // Constant nodes: run once, when loaded
  std::vector<Call> program;  // one step, in order
  // State slot (kPersistent) <- the slot of its new value, applied after a
  // training step.
  std::vector<std::pair<int, int>> updates;
  // The arena values still valid when a step ends (graph outputs, the loss,
  // the skip flag, request.keep); every other intermediate's memory is
  // reused during the step.
  std::unordered_set<std::string> kept;
  size_t arena_bytes = 0;     // the planned peak of all intermediates
  size_t unshared_bytes = 0;  // the same without reuse
  SpecializeRequest request;  // what it was made for
  std::string backend;        // the KernelSupport it was made for ("cpu", "cuda")

  // The slot of `name`, or -1.
  int Find(const std::string& name) const;
};

// Binds the symbolic dims of `model`'s inputs to `request.input_dims`, runs
// pipelines::Specialize (fold-shapes makes every shape static), checks that
// `backend` has a kernel for every node and that every value has a static
// shape, and plans memory. `model` is not changed. Errors name the node.
StatusOr<Executable> Specialize(const Model& model, const SpecializeRequest& request,
                                const KernelSupport& backend);

}  // namespace amp
