// amp-compile: ONNX model in, compiled ONNX model out.
//
//   amp-compile MODEL.onnx -o OUT.onnx [--opt-level O1] [--dtype fp16|bf16]
//               [--report] [--print-ir] ...
//
// O0 imports, infers shapes, verifies and exports with no precision change;
// O1 (the default) paints the graph with the op lists and inserts casts.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "codegen/cost_model.h"
#include "codegen/executable.h"
#include "compiler/loader.h"
#include "compiler/onnx_export.h"
#include "compiler/text.h"
#include "ops/op_def.h"
#include "passes/compile.h"
#include "passes/op_classes.h"
#include "passes/pipelines.h"
#include "passes/precision_report.h"
#include "passes/registry.h"
#include "runtime/backend.h"
#include "tools/cli_common.h"

namespace {

// A backend's kernel table that lets every node through and remembers the
// ones the backend lacks: the cost is estimated either way, and the report
// says what is missing.
class Recording : public amp::KernelSupport {
 public:
  explicit Recording(const amp::KernelSupport& real) : real_(real) {}
  std::string_view name() const override { return real_.name(); }
  amp::Status Supports(const amp::Node& node) const override {
    if (!real_.Supports(node).ok()) missing_.insert(node.op_type());
    return amp::Status::Ok();
  }
  bool HasKernel(std::string_view domain, std::string_view op) const override {
    return real_.HasKernel(domain, op);
  }
  bool AttentionGradReadsForward() const override { return real_.AttentionGradReadsForward(); }
  const std::set<std::string>& missing() const { return missing_; }

 private:
  const amp::KernelSupport& real_;
  mutable std::set<std::string> missing_;
};

// The step specialized for `target` at the bound dims, and its cost.
amp::StatusOr<nlohmann::json> StepCost(const amp::Model& model, const std::string& target,
                                       const std::string& device_model, std::string* ir) {
  amp::SpecializeRequest r;
  for (const amp::Value* v : model.graph->inputs()) {
    auto dims = v->type().shape ? amp::StaticDims(*v->type().shape) : std::nullopt;
    if (!dims)
      return amp::InvalidArgument("--target needs every input dim fixed, but input '", v->name(),
                                  "' is ", v->type().ToString(), "; pass --bind-dim NAME=N");
    r.input_dims[v->name()] = *dims;
  }
  r.fuse_optimizer = target == "cuda";  // what amp-train does by default
  // A build without the CUDA toolkit cannot read the CUDA kernel table; the
  // cost is the same (that of the CUDA backend with cuDNN), only the list of
  // missing kernels is unknown.
  struct Any : amp::KernelSupport {
    std::string target;
    std::string_view name() const override { return target; }
    amp::Status Supports(const amp::Node&) const override { return amp::Status::Ok(); }
    bool HasKernel(std::string_view, std::string_view) const override { return true; }
    bool AttentionGradReadsForward() const override { return target == "cuda"; }
  } any;
  any.target = target;
  auto support = amp::KernelSupportFor(target);
  if (!support.ok() && support.status().code() != amp::StatusCode::kUnimplemented)
    return support.status();
  Recording recording(support.ok() ? **support : static_cast<const amp::KernelSupport&>(any));
  AMP_ASSIGN_OR_RETURN(amp::Executable exe, amp::Specialize(model, r, recording));
  if (ir) *ir = amp::PrintModel(*exe.model);
  AMP_ASSIGN_OR_RETURN(amp::DeviceModel device, amp::FindDeviceModel(device_model));
  nlohmann::json cost = amp::CostToJson(amp::EstimateCost(exe, device), device);
  cost["target"] = target;
  cost["fused_optimizer"] = r.fuse_optimizer;
  if (support.ok())
    cost["ops_without_kernel"] = recording.missing();
  else
    cost["ops_without_kernel"] = nullptr;  // unknown: see kernel_table
  cost["kernel_table"] = support.ok() ? "read" : support.status().message();
  return cost;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"amp-compile: mixed-precision training compiler for ONNX models"};
  std::string input, output, report_json, dot_file;
  bool print_ir = false, print_specialized = false, list_ops = false, op_facts = false,
       version = false, report = false;
  amp::cli::PrecisionFlags precision;
  amp::cli::PipelineDebugFlags debug_flags;
  // The compiler's options, bound to the flags of the same names (their
  // defaults are CompileOptions's); the precision flags are shared with
  // amp-opt and filled in after parsing.
  amp::CompileOptions options;
  std::vector<float> betas = {options.beta1, options.beta2};
  std::vector<std::string> bind_dims;
  int64_t external_threshold = 0;
  std::string target, device_model = "h100";
  app.add_option("model", input, "input model (.onnx, or ONNX text)");
  app.add_option("-o,--out", output, "where to write the compiled model (.onnx)");
  precision.Add(app);
  debug_flags.Add(app);
  app.add_option(
      "--loss", options.loss,
      "build a training step with this loss: cross_entropy, mse, bce_with_logits, l1, or model "
      "(the model's output is already the loss)");
  app.add_option("--label", options.label,
                 "name of the label input the loss adds (default: labels)");
  app.add_option("--seed", options.seed,
                 "seed of training-mode Dropout (each node gets seed + its position)");
  app.add_option("--label-dtype", options.label_dtype,
                 "cross_entropy class indices: int64 (default) or int32")
      ->check(CLI::IsMember({"int64", "int32"}));
  app.add_option("--output", options.output,
                 "the model output the loss applies to (when there are several)");
  app.add_option("--freeze", options.freeze, "regex: parameters whose names match are not trained");
  app.add_flag("--train-mode", options.train_mode,
               "BatchNormalization written in inference form (the dynamo exporter's, even in "
               "train()) trains with batch statistics and updates its running statistics, as "
               "PyTorch's train() does");
  app.add_option(
      "--trainable", options.trainable,
      "regex: only parameters whose names match are trained (with --freeze, both apply)");
  app.add_option("--optimizer", options.optimizer, "sgd, adam or adamw (FP32 state)")
      ->check(CLI::IsMember({"sgd", "adam", "adamw"}));
  app.add_option("--lr", options.lr,
                 "learning rate (the step's lr input; this is its recorded default). Default: "
                 "PyTorch's, 1e-3 for adam and adamw; sgd has none and needs it");
  app.add_option("--momentum", options.momentum, "SGD momentum");
  app.add_option("--dampening", options.dampening, "SGD dampening");
  app.add_flag("--nesterov", options.nesterov, "SGD Nesterov momentum");
  app.add_option("--weight-decay", options.weight_decay,
                 "weight decay (L2 for sgd/adam, decoupled for adamw)");
  app.add_option("--betas", betas, "Adam betas, e.g. --betas 0.9,0.999")
      ->delimiter(',')
      ->expected(2);
  app.add_option("--eps", options.eps, "Adam epsilon");
  app.add_option(
      "--loss-scale", options.loss_scale,
      "dynamic, a number (static scale) or none; default: dynamic when the step runs in half, "
      "none in FP32 (O0)");
  app.add_option("--init-scale", options.init_scale, "initial dynamic loss scale (65536)");
  app.add_option("--growth-factor", options.growth_factor, "scale growth after a clean run (2)");
  app.add_option("--backoff-factor", options.backoff_factor, "scale backoff on overflow (0.5)");
  app.add_option("--growth-interval", options.growth_interval,
                 "clean steps before the scale grows (2000)");
  app.add_option("--min-scale", options.min_scale, "lower clamp of the dynamic scale (0: none)");
  app.add_option("--max-scale", options.max_scale, "upper clamp of the dynamic scale (0: none)");
  app.add_option(
         "--emit", options.emit,
         "with --loss: training_info (default: the forward model with the step in ONNX's "
         "training_info), functional (one graph, state in as inputs and out as outputs, runnable "
         "by any ONNX runtime) or gradients (loss and <param>_grad outputs, no optimizer)")
      ->check(CLI::IsMember({"training_info", "functional", "gradients"}));
  app.add_flag("--data-parallel", options.data_parallel,
               "all-reduce the gradients and the loss over the ranks after the backward pass "
               "(train with mpirun -np N amp-train, or one amp-train per rank with torchrun's "
               "RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)");
  app.add_option("--bucket-mb", options.bucket_mb,
                 "with --data-parallel: gradients per all-reduce, in MiB (4)");
  app.add_flag("--report", report,
               "print the precision report: per op type, casts, activation bytes, "
               "and the rule that decided each node");
  app.add_option("--report-json", report_json, "write the precision report as JSON");
  app.add_option("--dot", dot_file,
                 "write a Graphviz picture coloured by precision (and an SVG if dot is installed)");
  app.add_flag("--print-ir", print_ir, "print the IR (ONNX text with types) after compiling");
  app.add_flag("--print-specialized", print_specialized,
               "print the step as the --target backend runs it (after specialization and "
               "fusion: one node per kernel launch)");
  app.add_option("--bind-dim", bind_dims,
                 "fix a symbolic dim, e.g. --bind-dim batch=16 (repeatable)");
  app.add_option("--external-data-threshold", external_threshold,
                 "write tensors of at least this many bytes to OUT.onnx.data (0: inline)");
  app.add_option("--target", target,
                 "also specialize the step for this backend at the bound dims and put its cost "
                 "(launches, flops, bytes, peak, predicted time) in the report")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--device-model", device_model,
                 "the device the predicted time is for (h100 or h200; with --target)");
  app.add_flag("--list-ops", list_ops, "list the ONNX ops amp supports and exit");
  app.add_flag("--op-facts", op_facts,
               "print every op's record as JSON (arity, precision class, shape inputs, "
               "gradient) and exit");
  app.add_flag("--version", version, "print the version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }
  return amp::cli::RunMain("amp-compile", [&]() -> amp::Status {
    // (NaN is how CompileOptions says "unset": an explicit one is a mistake.)
    if (app.count("--lr") && !std::isfinite(options.lr))
      return amp::InvalidArgument("--lr must be a finite number of 0 or more, not ", options.lr);
    if (version) {
      std::printf("amp-compile %s\n", amp::cli::kVersion);
      return amp::Status::Ok();
    }
    if (op_facts) {
      nlohmann::json all = nlohmann::json::array();
      for (const amp::OpDef& d : amp::AllOps()) {
        const amp::OpDef::Arity& a = d.arity;
        all.push_back({{"domain", d.domain},
                       {"op", d.op_type},
                       {"inputs", {a.min_inputs, a.max_inputs}},
                       {"outputs", {a.min_outputs, a.max_outputs}},
                       {"class", amp::OpClassName(d.precision.op_class)},
                       {"reason", d.precision.reason},
                       {"shape_inputs", d.shape_inputs},
                       {"fp32_inputs", d.fp32_inputs},
                       {"gradient", d.grad ? "rule" : d.no_grad},
                       {"nondiff_inputs", d.nondiff_inputs}});
      }
      std::printf("%s\n", all.dump(1).c_str());
      return amp::Status::Ok();
    }
    if (list_ops) {
      for (auto op : amp::SupportedOps())
        std::printf("%.*s\n", static_cast<int>(op.size()), op.data());
      return amp::Status::Ok();
    }
    if (input.empty()) return amp::InvalidArgument("no input model given (see --help)");
    if (external_threshold < 0)
      return amp::InvalidArgument("--external-data-threshold must be 0 or more bytes, not ",
                                  external_threshold);
    AMP_ASSIGN_OR_RETURN(auto dim_bindings, amp::cli::ParseDimBindings(bind_dims));
    precision.Fill(options);
    options.beta1 = betas[0];
    options.beta2 = betas[1];
    options.bind_dims = dim_bindings;
    AMP_RETURN_IF_ERROR(amp::ValidateCompileOptions(options));
    // Progress is reported only once everything succeeded, so that a failure
    // prints exactly one line.
    std::string log;
    AMP_ASSIGN_OR_RETURN(amp::Model model, amp::LoadModel(input));
    log += amp::StrCat("amp-compile: imported ", input, ": ", amp::ModelSummary(model), "\n");
    if (output.empty() && !report && report_json.empty() && dot_file.empty() && !print_ir &&
        !print_specialized)
      return amp::InvalidArgument(
          "nothing to write: pass -o OUT.onnx (or --report, --report-json, --dot or --print-ir "
          "to inspect the compiled model without writing it)");
    // Training flags without --loss: a model whose only output is a scalar is
    // its own loss (--loss model); otherwise the step cannot be built, and
    // writing an inference model instead would ignore what was asked.
    if (options.loss.empty()) {
      std::string asked;
      for (const char* flag :
           {"--optimizer", "--loss-scale", "--lr", "--momentum", "--weight-decay", "--betas",
            "--freeze", "--trainable", "--nesterov", "--dampening", "--eps", "--train-mode"})
        if (app.count(flag) > 0) asked += asked.empty() ? flag : std::string(", ") + flag;
      if (!asked.empty()) {
        const auto& outs = model.graph->outputs();
        bool scalar = outs.size() == 1 && outs[0]->type().shape && outs[0]->type().shape->empty();
        if (!scalar)
          return amp::InvalidArgument(
              asked,
              " given without --loss, and the model's output is not a scalar loss: pass "
              "--loss cross_entropy, mse, bce_with_logits, l1 (or model, for a model that "
              "returns its own loss)");
        options.loss = "model";
        log += amp::StrCat("amp-compile: the model's only output '", outs[0]->name(),
                           "' is a scalar: training it as its own loss (--loss model)\n");
      }
    }
    AMP_ASSIGN_OR_RETURN(amp::PipelineDebug debug, debug_flags.Build());
    AMP_ASSIGN_OR_RETURN(amp::CompileResult compiled, amp::CompileModel(model, options, debug));
    for (size_t at = 0; at < compiled.log.size();) {
      size_t end = compiled.log.find('\n', at);
      log += "amp-compile: " + compiled.log.substr(at, end - at + 1);
      at = end + 1;
    }
    nlohmann::json& rep = compiled.report;
    std::string specialized;
    if (print_specialized && target.empty())
      return amp::InvalidArgument("--print-specialized needs --target cpu|cuda");
    if (!target.empty()) {
      AMP_ASSIGN_OR_RETURN(rep["cost"], StepCost(model, target, device_model,
                                                 print_specialized ? &specialized : nullptr));
      const auto& c = rep["cost"];
      log +=
          amp::StrCat("amp-compile: ", target, " step: ", c["launches"].get<int64_t>(),
                      " launches, peak ", c["peak_bytes"].get<int64_t>() >> 20, " MiB, predicted ",
                      c["predicted_ms"].get<double>(), " ms on ", device_model, "\n");
      if (c["ops_without_kernel"].is_array() && !c["ops_without_kernel"].empty())
        log += amp::StrCat("amp-compile: note: the ", target, " backend has no kernel yet for ",
                           c["ops_without_kernel"].dump(), "\n");
    }
    if (!output.empty()) {
      amp::ExportOptions eo;
      eo.external_data_threshold = static_cast<size_t>(external_threshold);
      if (options.emit == "functional" || options.emit == "gradients")
        eo.training_form = amp::TrainingForm::kFunctional;
      AMP_RETURN_IF_ERROR(amp::SaveModelFile(model, output, eo));
      log += amp::StrCat("amp-compile: wrote ", output, "\n");
    }
    if (!report_json.empty()) {
      std::ofstream f(report_json);
      if (!(f << rep.dump(2) << "\n")) return amp::IoError("cannot write '", report_json, "'");
    }
    if (!dot_file.empty()) {
      std::ofstream f(dot_file);
      if (!(f << amp::PrecisionDot(model))) return amp::IoError("cannot write '", dot_file, "'");
      f.close();
      if (std::system("command -v dot >/dev/null 2>&1") == 0) {
        std::string cmd = "dot -Tsvg '" + dot_file + "' -o '" + dot_file + ".svg'";
        if (std::system(cmd.c_str()) == 0)
          log += amp::StrCat("amp-compile: wrote ", dot_file, ".svg\n");
      }
    }
    std::fputs(log.c_str(), stderr);
    if (report) std::cout << amp::FormatPrecisionReport(rep);
    if (report && rep.contains("cost")) std::cout << amp::FormatCost(rep["cost"]);
    if (print_ir) std::cout << amp::PrintModel(model);
    if (print_specialized) std::cout << specialized;
    return amp::Status::Ok();
  });
}
