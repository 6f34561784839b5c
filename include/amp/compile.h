// amp::Compile: an ONNX model in, a compiled model out (a mixed-precision
// training step, or an inference model), exactly as amp-compile makes it.
// Every option has amp-compile's flag of the same name (--opt-level is
// opt_level, --loss-scale is loss_scale, ...) and the same default.
//
//   amp::CompileOptions o;
//   o.loss = "cross_entropy";
//   o.optimizer = "adam";
//   o.lr = 1e-3f;
//   auto step = amp::Compile("model.onnx", o);      // StatusOr<CompiledModel>
//   if (!step.ok()) { puts(step.status().message().c_str()); return 1; }
//   auto session = amp::Session::Create(*step);     // amp/session.h
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "amp/export.h"
#include "amp/status.h"

namespace amp {

struct CompileOptions {
  // Precision. opt_level: O0 (no change), O1 (the op lists; default), O2 (all
  // half but the FP32 list), O3 (pure half, for comparison only).
  std::string opt_level = "O1";
  std::string dtype = "fp16";         // the half type: fp16 or bf16
  std::vector<std::string> fp32_ops;  // op types to keep in FP32
  std::vector<std::string> half_ops;  // op types to run in half
  std::string fp32_nodes;             // regex of node (or output) names kept in FP32
  std::string policy_file;            // a JSON policy (the same fields), read last
  bool keep_batchnorm_fp32 = false;

  // The training step. An empty loss compiles an inference model (precision
  // only); otherwise one of cross_entropy, mse, bce_with_logits, l1, or model
  // (the model's output is already the loss).
  std::string loss;
  std::string label = "labels";       // the label input the loss adds
  std::string label_dtype = "int64";  // cross_entropy class indices: int64 or int32
  std::string output;                 // the output the loss applies to ("" = the only one)
  std::string freeze;                 // regex: parameters not trained
  std::string trainable;              // regex: the only parameters trained ("" = all)
  int64_t seed = 0;                   // training-mode Dropout seeds
  // BatchNormalization in inference form (the dynamo exporter's, even for a
  // module in train()) trains with the batch's statistics, as PyTorch's
  // train() does, and updates its running statistics.
  bool train_mode = false;

  std::string optimizer = "sgd";  // sgd, adam or adamw (FP32 master weights and state)
  // The step's lr input's recorded default. NaN (unset): PyTorch's default
  // for the optimizer, 1e-3 for Adam and AdamW; SGD has none, so an SGD step
  // needs it (an error otherwise, as torch.optim.SGD without lr is).
  float lr = std::numeric_limits<float>::quiet_NaN();
  float momentum = 0.0f, dampening = 0.0f;
  bool nesterov = false;
  float weight_decay = 0.0f;  // L2 for sgd/adam, decoupled for adamw
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;

  // "auto" (dynamic when the step runs in half, none at O0), "dynamic",
  // "none", or a number (a static scale).
  std::string loss_scale = "auto";
  float init_scale = 65536.0f, growth_factor = 2.0f, backoff_factor = 0.5f;
  int64_t growth_interval = 2000;
  float min_scale = 0.0f, max_scale = 0.0f;  // 0: no clamp

  // Data-parallel training (amp-train under mpirun): gradients and loss
  // all-reduced (the mean over the ranks) after the backward pass, in
  // buckets of bucket_mb in the order the backward pass produces them.
  bool data_parallel = false;
  float bucket_mb = 4.0f;

  // training_info (the forward model with the step in ONNX's training_info),
  // functional (one graph, state in as inputs and out as outputs) or
  // gradients (loss and <param>_grad outputs, no optimizer).
  std::string emit = "training_info";
  // Symbolic dims to fix, e.g. {{"batch", 16}}.
  std::map<std::string, int64_t> bind_dims;
};

// A compiled model: serialized ONNX (what amp-compile -o writes) and the
// precision report amp-compile --report-json writes.
class AMP_API CompiledModel {
 public:
  CompiledModel() = default;
  CompiledModel(std::string onnx, std::string report_json, std::string log)
      : onnx_(std::move(onnx)), report_json_(std::move(report_json)), log_(std::move(log)) {}

  // The ModelProto's bytes.
  const std::string& onnx() const { return onnx_; }
  // Per op type, the casts inserted, activation bytes and the rule that
  // decided each node (JSON).
  const std::string& report_json() const { return report_json_; }
  // What amp-compile prints on stderr (one line per stage).
  const std::string& log() const { return log_; }
  // Writes the model (atomically: a temporary file, then rename).
  Status Save(const std::string& path) const;

 private:
  std::string onnx_, report_json_, log_;
};

// From a .onnx file (external data beside it), or ONNX text (.onnxtxt).
AMP_API StatusOr<CompiledModel> Compile(const std::string& path,
                                        const CompileOptions& options = {});
// From a serialized ModelProto (or ONNX text) in memory; no external data.
AMP_API StatusOr<CompiledModel> CompileBytes(const std::string& bytes,
                                             const CompileOptions& options = {});

}  // namespace amp
