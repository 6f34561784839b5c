// amp-opt: runs named passes on a model and prints the IR, like mlir-opt.
// This is what the golden tests drive.
//
//   amp-opt INPUT [--passes=fold-shapes,dce] [--bind-dim batch=16]
//           [--split-input-file] [-o OUT.onnx]
//
// With --split-input-file the input is cut at lines "# -----" and each part
// is processed on its own; outputs are separated by "# -----" and an error in
// one part is printed (as "error: ...") without stopping the others.
#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "compiler/loader.h"
#include "compiler/onnx_export.h"
#include "compiler/text.h"
#include "passes/registry.h"
#include "tools/cli_common.h"

namespace {

amp::Status Process(amp::StatusOr<amp::Model> loaded, const std::string& passes,
                    const amp::PassOptions& options, const amp::PipelineDebug& debug,
                    const std::string& output) {
  if (!loaded.ok()) return loaded.status();
  amp::Model& model = *loaded;
  AMP_ASSIGN_OR_RETURN(amp::PassPipeline pipeline, amp::BuildPipeline(passes, options));
  pipeline.set_debug(debug);
  AMP_RETURN_IF_ERROR(pipeline.Run(model).status());
  std::cout << amp::PrintModel(model);
  if (!output.empty()) AMP_RETURN_IF_ERROR(amp::SaveModelFile(model, output));
  return amp::Status::Ok();
}

std::vector<std::string> SplitInput(const std::string& text) {
  std::vector<std::string> parts;
  std::istringstream in(text);
  std::string line, current;
  while (std::getline(in, line)) {
    if (line.rfind("# -----", 0) == 0) {
      parts.push_back(current);
      current.clear();
      continue;
    }
    current += line + "\n";
  }
  parts.push_back(current);
  return parts;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"amp-opt: run amp passes on a model and print the IR"};
  std::string input, passes, output;
  std::vector<std::string> bind_dims;
  bool split = false;
  amp::cli::PrecisionFlags precision;
  amp::cli::PipelineDebugFlags debug_flags;
  amp::PassOptions training;  // options of attach-loss, autodiff, loss-scaling and optimizer
  app.add_option("input", input, "model (.onnx or ONNX text)")->required();
  app.add_option("--passes", passes, "comma-separated pass names, run in order");
  app.add_option("--bind-dim", bind_dims, "NAME=VALUE for bind-dims (repeatable)");
  app.add_flag("--split-input-file", split, "process each '# -----' separated part on its own");
  app.add_option("-o,--output", output, "also write the result as .onnx");
  precision.Add(app);
  debug_flags.Add(app);
  app.add_option("--loss", training.loss.kind,
                 "attach-loss: cross_entropy, mse, bce_with_logits, l1, model");
  app.add_option("--label", training.loss.label, "attach-loss: label input name");
  app.add_option("--freeze", training.freeze, "autodiff: regex of frozen parameters");
  app.add_option("--trainable", training.trainable,
                 "autodiff: regex of the only trained parameters");
  app.add_option("--optimizer", training.optimizer.kind, "optimizer: sgd, adam or adamw");
  app.add_option("--momentum", training.optimizer.momentum, "optimizer: SGD momentum");
  app.add_option("--weight-decay", training.optimizer.weight_decay, "optimizer: weight decay");
  app.add_option("--growth-interval", training.loss_scale.growth_interval,
                 "loss-scaling: growth interval");
  app.add_option("--init-scale", training.loss_scale.init_scale,
                 "loss-scaling: initial (or static) scale");
  bool static_scale = false;
  app.add_flag("--static-loss-scale", static_scale, "loss-scaling: keep the scale fixed");
  app.add_option("--bucket-bytes", training.data_parallel.bucket_bytes,
                 "data-parallel: gradient bytes per AllReduce (4 MiB)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }
  return amp::cli::RunMain("amp-opt", [&]() -> amp::Status {
    amp::PassOptions options;
    AMP_ASSIGN_OR_RETURN(options.dim_bindings, amp::cli::ParseDimBindings(bind_dims));
    AMP_ASSIGN_OR_RETURN(options.precision, precision.Build());
    options.loss = training.loss;
    options.freeze = training.freeze;
    options.trainable = training.trainable;
    options.optimizer = training.optimizer;
    options.loss_scale = training.loss_scale;
    options.loss_scale.dynamic = !static_scale;
    options.data_parallel = training.data_parallel;
    AMP_ASSIGN_OR_RETURN(amp::PipelineDebug debug, debug_flags.Build());
    if (!split) return Process(amp::LoadModel(input), passes, options, debug, output);
    AMP_ASSIGN_OR_RETURN(std::string source, amp::ReadRegularFile(input));
    auto parts = SplitInput(source);
    bool failed = false;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i) std::cout << "# -----\n";
      amp::Status st = Process(amp::LoadModelText(parts[i]), passes, options, debug, "");
      if (!st.ok()) {
        std::cout << "error: " << st.message() << "\n";
        failed = true;
      }
    }
    std::cout.flush();
    return failed ? amp::InvalidArgument("some parts of the split input failed")
                  : amp::Status::Ok();
  });
}
