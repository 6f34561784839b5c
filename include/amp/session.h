// amp::Session: runs a compiled model - one training step per Run (forward,
// backward, loss scaling, the optimizer on FP32 master weights), or the
// forward graph of an inference model - on the CPU or a CUDA GPU.
//
//   auto s = amp::Session::Create(*step, {.device = "cpu"});   // StatusOr
//   (*s)->SetInput("input", amp::TensorView::Of(x, {32, 784}));
//   (*s)->SetInput("labels", amp::TensorView::Of(y, {32}));
//   if (amp::Status st = (*s)->Run(); !st.ok()) ...
//   double loss = *(*s)->Loss();
//
// The first Run for a new set of input shapes specializes the step to them
// (every shape static, buffers planned) and later Runs with those shapes
// reuse it. Inputs are copied at Run; nothing is allocated inside a step.
// A Session is not thread-safe: use one per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "amp/compile.h"
#include "amp/distributed.h"
#include "amp/export.h"
#include "amp/status.h"
#include "amp/tensor.h"

namespace amp {

struct SessionOptions {
  std::string device = "cpu";  // "cpu" or "cuda"
  // Run the forward (inference) graph of a compiled step instead of the step.
  bool inference = false;
  // One multi-tensor Adam/AdamW kernel for the whole update (amp-train's
  // default; bit-identical to the unfused graph on the CPU).
  bool fuse_optimizer = true;
  // Chains of elementwise ops as one kernel each (the same values bit for
  // bit; off runs one kernel per op).
  bool fuse_elementwise = true;
  // A step without loss scaling (FP32) whose loss or new state is not finite:
  // kError fails Run and keeps the old state (amp-train's default), kSkip
  // keeps the old state and reports the step skipped, kApply applies it.
  enum class NonFinite { kError, kSkip, kApply };
  NonFinite non_finite = NonFinite::kError;
  // Values to keep for Fetch besides the outputs, the loss and the state (an
  // activation, say): an intermediate's memory is otherwise reused before the
  // step ends, and Fetch refuses it.
  std::vector<std::string> fetch;
  // The ranks of a data-parallel job (amp/distributed.h), for a step compiled
  // with data_parallel: the state is broadcast from rank 0 when the session
  // is created and after LoadCheckpoint (which every rank calls), and each
  // Run averages the gradients over the ranks. Null: this process alone.
  std::shared_ptr<ProcessGroup> process_group;
};

// A graph input or output: -1 marks a dim that is fixed only when inputs are
// bound (its name in dim_names, "" for a static dim).
struct ValueInfo {
  std::string name;
  DType dtype = DType::kUndefined;
  std::vector<int64_t> dims;
  std::vector<std::string> dim_names;
  bool has_shape = true;  // false: the rank is not known either
};

class AMP_API Session {
 public:
  // A compiled model written by amp-compile (or CompiledModel::Save).
  static StatusOr<std::unique_ptr<Session>> Open(const std::string& path,
                                                 const SessionOptions& options = {});
  // A serialized compiled model in memory.
  static StatusOr<std::unique_ptr<Session>> FromBytes(const std::string& onnx,
                                                      const SessionOptions& options = {});
  static StatusOr<std::unique_ptr<Session>> Create(const CompiledModel& model,
                                                   const SessionOptions& options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Whether Run is a training step (false for an inference model, or with
  // SessionOptions::inference).
  bool is_training() const;
  std::string device() const;
  // What Run needs and gives. For a step, inputs include the labels and the
  // learning rate (bound by the session: see SetLearningRate), and outputs
  // are the loss and the model's own outputs (the logits), which Fetch reads
  // after each step.
  std::vector<ValueInfo> inputs() const;
  std::vector<ValueInfo> outputs() const;

  // Binds a graph input for the next Run; it is copied at Run. Its dtype must
  // be the declared one and its dims must match the static ones.
  Status SetInput(const std::string& name, const TensorView& value);
  // The learning rate of the next steps (default: the one compiled into the
  // step). An error for a model without one.
  Status SetLearningRate(double lr);
  double learning_rate() const;

  // One step (or one forward pass). A failed Run leaves parameters and
  // optimizer state as they were.
  Status Run();

  // After a training Run: the loss, the loss scale the next step will use (1
  // without loss scaling), whether the step was skipped (non-finite
  // gradients), and the number of steps run (checkpoints keep it).
  StatusOr<double> Loss() const;
  StatusOr<double> LossScale() const;
  StatusOr<bool> StepSkipped() const;
  int64_t step() const;

  // A graph output after Run, or any parameter or piece of state.
  StatusOr<Array> Fetch(const std::string& name) const;
  // The trained tensors (FP32 masters), and everything a step updates
  // (parameters, optimizer moments and steps, the loss scale).
  std::vector<std::string> ParameterNames() const;
  std::vector<std::string> StateNames() const;
  // Replaces an initializer's value (a parameter, a piece of state): same
  // dtype and dims, host memory.
  Status SetParameter(const std::string& name, const TensorView& value);

  // Every piece of state and the step, in DIR/checkpoint.npz (atomically; the
  // format amp-train writes and resumes). `metadata_json` is kept with it.
  Status SaveCheckpoint(const std::string& dir, const std::string& metadata_json = "{}") const;
  // Restores a checkpoint of this step; nothing changes when it is refused
  // (the message names the entry). Returns the metadata saved with it.
  StatusOr<std::string> LoadCheckpoint(const std::string& dir);
  // The forward (inference) model with the trained weights, as ONNX.
  Status ExportInference(const std::string& path) const;

 private:
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "MAJOR.MINOR.PATCH" of the library that is loaded (AMP_VERSION in
// amp/version.h is the one compiled against).
AMP_API const char* Version();

}  // namespace amp
