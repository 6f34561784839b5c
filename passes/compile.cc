#include "passes/compile.h"

#include <cmath>
#include <exception>
#include <map>

#include "passes/attach_loss.h"
#include "passes/loss_scaling.h"
#include "passes/optimizer.h"
#include "passes/pipelines.h"
#include "passes/precision_report.h"
#include "passes/train_mode.h"

namespace amp {
namespace {

Status OneOf(const char* option, const std::string& value,
             std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return Status::Ok();
    list += list.empty() ? a : StrCat(", ", a);
  }
  return InvalidArgument(option, " must be one of ", list, ", not '", value, "'");
}

// The loss scaling the options ask for; nullopt for none.
StatusOr<std::optional<LossScaleOptions>> LossScaleFor(const CompileOptions& o,
                                                       const PrecisionPolicy& policy) {
  LossScaleOptions ls;
  ls.init_scale = o.init_scale;
  ls.growth_factor = o.growth_factor;
  ls.backoff_factor = o.backoff_factor;
  ls.growth_interval = o.growth_interval;
  ls.min_scale = o.min_scale;
  ls.max_scale = o.max_scale;
  const std::string& s = o.loss_scale;
  if (s == "none" || (s == "auto" && policy.level == OptLevel::kO0))
    return std::optional<LossScaleOptions>();
  if (s == "auto" || s == "dynamic") return std::optional<LossScaleOptions>(ls);
  try {
    size_t used = 0;
    ls.init_scale = std::stof(s, &used);
    if (used != s.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    return InvalidArgument("--loss-scale expects dynamic, none or a number, got '", s, "'");
  }
  ls.dynamic = false;
  return std::optional<LossScaleOptions>(ls);
}

}  // namespace

StatusOr<PrecisionPolicy> PolicyFor(const CompileOptions& o) {
  PrecisionPolicy p;
  AMP_ASSIGN_OR_RETURN(p.level, ParseOptLevel(o.opt_level));
  AMP_ASSIGN_OR_RETURN(p.half_type, ParseHalfType(o.dtype));
  p.fp32_ops.insert(o.fp32_ops.begin(), o.fp32_ops.end());
  p.half_ops.insert(o.half_ops.begin(), o.half_ops.end());
  p.fp32_nodes = o.fp32_nodes;
  p.keep_batchnorm_fp32 = o.keep_batchnorm_fp32;
  if (!o.policy_file.empty()) AMP_RETURN_IF_ERROR(p.MergeJsonFile(o.policy_file));
  AMP_RETURN_IF_ERROR(p.Validate());
  return p;
}

Status ValidateCompileOptions(const CompileOptions& o) {
  AMP_ASSIGN_OR_RETURN(PrecisionPolicy policy, PolicyFor(o));
  AMP_RETURN_IF_ERROR(OneOf("optimizer (--optimizer)", o.optimizer, {"sgd", "adam", "adamw"}));
  AMP_RETURN_IF_ERROR(OneOf("label_dtype (--label-dtype)", o.label_dtype, {"int64", "int32"}));
  AMP_RETURN_IF_ERROR(OneOf("emit (--emit)", o.emit, {"training_info", "functional", "gradients"}));
  // The loss kind and the numbers are checked by the passes that use them
  // (attach-loss, optimizer, loss-scaling), with one message each.
  if (!(o.bucket_mb > 0 && o.bucket_mb <= 4096))
    return InvalidArgument("bucket_mb (--bucket-mb) must be more than 0 and at most 4096, not ",
                           o.bucket_mb);
  for (const auto& [dim, v] : o.bind_dims)
    if (dim.empty() || v < 0)
      return InvalidArgument("bind_dims (--bind-dim) needs a name and a non-negative size, got '",
                             dim, "'=", v);
  return LossScaleFor(o, policy).status();
}

// The BatchNorms the exporter's graph signature lists (their running_mean
// buffers) that the graph no longer holds: folded into their Conv by the
// exporter's optimizer, they cannot train with batch statistics.
std::string FoldedBatchNormWarning(const Model& m) {
  static constexpr std::string_view kSuffix = ".running_mean";
  std::vector<std::string> folded;
  for (const std::string& name : m.exporter_non_parameters)
    if (name.size() > kSuffix.size() && name.ends_with(kSuffix) && !m.graph->FindValue(name))
      folded.push_back(name.substr(0, name.size() - kSuffix.size()));
  if (folded.empty()) return "";
  std::string some;
  for (size_t i = 0; i < folded.size() && i < 4; ++i) some += StrCat(i ? ", " : "", folded[i]);
  return StrCat("warning: --train-mode: the exporter folded ", folded.size(),
                " BatchNorm(s) into their Conv (", some, folded.size() > 4 ? ", ..." : "",
                "); those cannot normalize by the batch's statistics as PyTorch's train() does: "
                "export with torch.onnx.export(..., dynamo=True, optimize=False)\n");
}

std::string ModelSummary(const Model& m) {
  std::map<std::string, int> ops;
  for (const Node* n : m.graph->nodes()) ++ops[n->op_type()];
  std::string s;
  for (const auto& [op, count] : ops) s += StrCat(s.empty() ? "" : ", ", op, " x", count);
  int64_t params = 0;
  for (const Value* v : m.graph->initializers()) params += v->initializer()->num_elements();
  return StrCat(m.graph->num_nodes(), " nodes (", s, "), ", m.graph->initializers().size(),
                " initializers with ", params, " elements, opset ", m.OpsetVersion(""));
}

StatusOr<CompileResult> CompileModel(Model& model, const CompileOptions& o,
                                     const PipelineDebug& debug) {
  AMP_RETURN_IF_ERROR(ValidateCompileOptions(o));
  AMP_ASSIGN_OR_RETURN(PrecisionPolicy policy, PolicyFor(o));
  if (o.data_parallel && o.loss.empty())
    return InvalidArgument("data_parallel (--data-parallel) needs a training step (--loss)");
  CompileResult result;
  int casts_before = CountCasts(model);
  // Lower first: a model from another producer may hold Gradient nodes.
  PassPipeline pipeline = pipelines::Lower();
  if (!o.bind_dims.empty()) pipeline.Append(pipelines::BindShapes(o.bind_dims));
  if (o.train_mode && o.loss.empty())
    return InvalidArgument("train_mode (--train-mode) needs a training step (--loss)");
  if (o.train_mode) pipeline.Add(std::make_unique<TrainMode>());
  if (!o.loss.empty()) {
    pipelines::TrainingOptions t;
    t.loss.kind = o.loss;
    t.loss.label = o.label;
    t.loss.seed = o.seed;
    t.loss.label_type = o.label_dtype == "int32" ? DType::kInt32 : DType::kInt64;
    t.loss.output = o.output;
    t.freeze = o.freeze;
    t.trainable = o.trainable;
    // (An unset lr, NaN, is resolved by the optimizer pass: PyTorch's default.)
    t.optimizer = {o.optimizer,    o.lr,    o.momentum, o.dampening, o.nesterov,
                   o.weight_decay, o.beta1, o.beta2,    o.eps};
    AMP_ASSIGN_OR_RETURN(t.loss_scale, LossScaleFor(o, policy));
    t.gradients_only = o.emit == "gradients";
    if (o.data_parallel) {
      DataParallelOptions dp;
      dp.bucket_bytes = static_cast<size_t>(static_cast<double>(o.bucket_mb) * (1 << 20));
      t.data_parallel = dp;
    }
    pipeline.Append(pipelines::Training(t));
  }
  pipeline.Append(pipelines::ForLevel(policy));
  pipeline.set_debug(debug);
  AMP_ASSIGN_OR_RETURN(bool changed, pipeline.Run(model));
  if (changed) result.log += StrCat("after ", pipeline.Describe(), ": ", ModelSummary(model), "\n");
  if (policy.level == OptLevel::kO3)
    result.log +=
        "warning: O3 runs everything in half, softmax, norms and losses included; use it only "
        "to compare against O1/O2\n";
  if (o.train_mode) result.log += FoldedBatchNormWarning(model);
  // The policy file may have changed dtype and level: report what ran.
  ReportContext rc{PrecisionName(policy.half_type), OptLevelName(policy.level), casts_before};
  result.report = BuildPrecisionReport(model, rc);
  const auto& sum = result.report["summary"];
  result.log += StrCat(rc.opt_level, ": ", sum["half"].get<int>(), " nodes in ", rc.dtype, ", ",
                       sum["fp32"].get<int>(), " in fp32, ", sum["untouched"].get<int>(),
                       " untouched; ", sum["casts_inserted"].get<int>(), " casts inserted\n");
  if (sum["half"].get<int>() == 0)
    result.log += "note: nothing was converted to half (see --report for why)\n";
  return result;
}

}  // namespace amp
