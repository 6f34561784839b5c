// The executor: runs a model that amp-compile wrote - the training step from
// its training_info, or its forward graph - on a Backend.
//
//   auto s = Executor::Open("step.onnx", {.device = "cpu"});
//   s->SetInput("input", x); s->SetInput("labels", y); s->SetInput("lr", lr);
//   s->Run();                        // one step: forward, backward, update
//   float loss = s->Fetch("loss")->GetDouble(0);
//
// The first Run for a new set of input shapes asks the compiler for an
// Executable (codegen/executable.h: symbolic dims bound, shape computations
// folded, every shape static, a kernel for every node, the static memory
// plan) and loads it: one arena for all intermediates, allocated once;
// nothing is allocated inside a step. Executables are cached per shape
// signature, so alternating batch shapes do not compile again. Parameters and optimizer state live
// in their own buffers, replaced after each training step by the values the step bound to them
// (ONNX's update_binding).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "codegen/executable.h"
#include "compiler/ir.h"
#include "compiler/onnx_import.h"
#include "compiler/status.h"
#include "runtime/backend.h"

namespace amp {

// What Run does when a training step without loss scaling (an FP32 step)
// computes a non-finite loss or gradient. Steps with loss scaling skip such
// steps by themselves (their found-inf flag).
enum class NonFinitePolicy {
  kApply,  // update the state anyway (what the graph says)
  kError,  // leave the state as before the step; Run fails naming the value
  kSkip,   // leave the state as before the step; StepSkipped() is true
};

struct ExecutorOptions {
  std::string device = "cpu";
  // kStep runs the training step; kForward the forward (inference) graph.
  TrainingInfoMode mode = TrainingInfoMode::kStep;
  // Values to fetch after Run besides the graph outputs (kept alive to the end).
  std::vector<std::string> extra_outputs;
  // When some shape can only be known from the values of integer inputs
  // (Reshape's shape fed as an input, as in ONNX's operator tests), those
  // inputs become constants of the specialization; binding other values to
  // them specializes again.
  bool freeze_shape_inputs = false;
  // Fill the arena with 0xff bytes (NaN in every float type) when it is
  // allocated, so that a kernel that leaves an output unwritten shows (tests).
  bool poison = false;
  // Replace the per-parameter Adam/AdamW update by one multi-tensor kernel
  // (the fuse-optimizer pass; bit-identical on the CPU).
  bool fuse_optimizer = false;
  // See NonFinitePolicy. Checking reads the loss and the new state after
  // each step (both are live at its end anyway: no memory is added).
  NonFinitePolicy non_finite = NonFinitePolicy::kApply;
  // The ranks a data-parallel step (ai.amp AllReduce) reduces over; null:
  // one rank. Not owned: it outlives the executor.
  Communicator* comm = nullptr;
  // Specialization passes not to run, by name (e.g. "transpose-folding"):
  // for comparing a fusion with the unfused step.
  std::set<std::string, std::less<>> disabled_passes;
  // Time every kernel call (the backend synchronized after each, so the
  // step runs slower): Executor::profile() sums them per op and per node.
  bool profile = false;
};

// Where a step's time goes (ExecutorOptions::profile), summed over steps.
struct ProfileEntry {
  std::string key;  // the op ("Domain:Op" outside the default domain), or a node's description
  size_t calls = 0;
  double seconds = 0;
};

struct MemoryReport {
  size_t arena_bytes = 0;       // planned peak of all intermediates
  size_t unshared_bytes = 0;    // the same without reuse
  size_t persistent_bytes = 0;  // parameters, optimizer state, constants
  size_t input_bytes = 0;
  size_t nodes = 0;  // nodes a step runs (constants excluded)
};

class Executor {
 public:
  static StatusOr<std::unique_ptr<Executor>> Open(const std::string& path,
                                                  const ExecutorOptions& options = {});
  // From a model in memory (the training step in Model::training when
  // options.mode is kStep). Gradient nodes must have been expanded by the
  // compiler (pipelines::Lower) first.
  static StatusOr<std::unique_ptr<Executor>> Create(Model model,
                                                    const ExecutorOptions& options = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // The model as loaded (symbolic dims), with Model::training for a step.
  const Model& model() const { return *base_; }
  bool is_training() const { return base_->training.active() && !base_->training.updates.empty(); }
  std::string_view device() const { return backend_->name(); }

  // Binds a graph input for the next Run (copied). Its element type must be
  // the declared one; its dims fix the symbolic ones.
  Status SetInput(const std::string& name, const Tensor& value);
  // The same from memory of this executor's backend (a CUDA pointer for
  // "cuda", host memory for "cpu"): dense row-major data, read by the next
  // Run, which copies it (so it must stay valid until then).
  Status SetInputOnDevice(const std::string& name, DType dtype, std::vector<int64_t> dims,
                          const void* data);
  // Runs the graph once; for a training step, then replaces every piece of
  // state by its update.
  Status Run();
  // A graph output, a value named in extra_outputs, or a piece of state, as a
  // host tensor.
  StatusOr<Tensor> Fetch(const std::string& name) const;

  // For a training step, after Run: the loss of the step, the loss scale the
  // next step will use (1 without loss scaling), and whether the step was
  // skipped (non-finite gradients; false without loss scaling).
  StatusOr<double> Loss() const;
  StatusOr<double> LossScale() const;
  StatusOr<bool> StepSkipped() const;

  // Parameters, optimizer state, loss scale: the initializers a step updates.
  std::vector<std::string> StateNames() const;
  // Initializers by name (state or not), and replacing one's value.
  StatusOr<Tensor> Initializer(const std::string& name) const;
  Status SetInitializer(const std::string& name, const Tensor& value);

  int64_t step() const { return step_; }
  void set_step(int64_t s) { step_ = s; }
  // The plan of the Executable the last Run used (zero before the first Run).
  const MemoryReport& memory() const { return memory_; }
  // Kernel time per op and per node, most first (empty unless profiling).
  std::vector<ProfileEntry> ProfileByOp() const;
  std::vector<ProfileEntry> ProfileByNode() const;
  // How many specializations (one per input-shape signature) are cached.
  size_t cached_executables() const { return cache_.size(); }

  // At most this many Executables are kept; the least recently used goes.
  static constexpr size_t kMaxCached = 8;

 private:
  Executor() = default;
  std::map<std::string, ProfileEntry> profile_ops_, profile_nodes_;
  // An Executable loaded onto the backend: a TensorRef per slot, the program
  // as kernel calls on them.
  struct Loaded {
    Executable exe;
    std::vector<TensorRef> refs;  // one per slot of exe
    std::vector<void*> owned;     // its input buffers and constants
    struct Step {
      const KernelAttrs* call;
      std::vector<const TensorRef*> in;
      std::vector<TensorRef*> out;
    };
    std::vector<Step> program;
    std::vector<std::pair<TensorRef*, const TensorRef*>> updates;  // state <- update
    void* arena = nullptr;  // the arena its kArena refs point into
    size_t input_bytes = 0;
  };
  // The Executable for the bound inputs: cached, or specialized and loaded.
  StatusOr<Loaded*> Prepare();
  StatusOr<std::unique_ptr<Loaded>> Load(Executable exe);
  bool Matches(const Executable& exe) const;
  void Release(Loaded& l);
  Status Copy(const TensorRef& from, TensorRef& to);
  // Whether the non-finite guard applies (an FP32 training step).
  bool Guarded() const;
  // "" when the loss and every gradient are finite, else what is not.
  StatusOr<std::string> FirstNonFinite() const;
  const TensorRef* Ref(const std::string& name) const;

  ExecutorOptions options_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> base_;  // as given; every specialization starts from it

  // Persistent buffers: initializers by name (parameters, state, constants).
  std::map<std::string, TensorRef> persistent_;
  // A bound input: a host copy, or a pointer into the backend's memory.
  struct Pending {
    Tensor host;
    const void* device = nullptr;
    DType dtype = DType::kUndefined;
    std::vector<int64_t> dims;
    size_t nbytes = 0;
  };
  // Checks a value for input `name` against its declaration.
  Status CheckInput(const std::string& name, DType dtype, const std::vector<int64_t>& dims) const;
  std::map<std::string, Pending> pending_;
  // Specializations, least recently used first; active_ is the last Run's.
  std::vector<std::unique_ptr<Loaded>> cache_;
  Loaded* active_ = nullptr;
  void* arena_ = nullptr;  // shared by every cached Executable, sized to the largest
  size_t arena_capacity_ = 0;
  MemoryReport memory_;
  int64_t step_ = 0;
  bool guard_skipped_ = false;  // the last step was skipped by NonFinitePolicy::kSkip
};

}  // namespace amp
