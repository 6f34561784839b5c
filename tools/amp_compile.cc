// amp-compile: ONNX model in, compiled ONNX model out.
//
//   amp-compile MODEL.onnx -o OUT.onnx [--opt-level O0] [--print-ir]
//
// O0 imports, infers shapes, verifies and exports with no precision change.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <map>

#include "compiler/loader.h"
#include "compiler/onnx_export.h"
#include "compiler/op_registry.h"
#include "compiler/text.h"
#include "passes/registry.h"
#include "tools/cli_common.h"

namespace {

std::string Summary(const amp::Model& m) {
  std::map<std::string, int> ops;
  for (const amp::Node* n : m.graph->nodes()) ++ops[n->op_type()];
  std::string s;
  for (const auto& [op, count] : ops) s += amp::StrCat(s.empty() ? "" : ", ", op, " x", count);
  int64_t params = 0;
  for (const amp::Value* v : m.graph->initializers()) params += v->initializer()->num_elements();
  return amp::StrCat(m.graph->num_nodes(), " nodes (", s, "), ", m.graph->initializers().size(),
                     " initializers with ", params, " elements, opset ", m.OpsetVersion(""));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"amp-compile: mixed-precision training compiler for ONNX models"};
  std::string input, output, opt_level = "O0";
  bool print_ir = false, list_ops = false, version = false;
  std::vector<std::string> bind_dims;
  size_t external_threshold = 0;
  app.add_option("model", input, "input model (.onnx, or ONNX text)");
  app.add_option("-o,--output", output, "where to write the compiled model (.onnx)");
  app.add_option("--opt-level", opt_level, "O0: import, verify and export, no precision change")
      ->check(CLI::IsMember({"O0", "O1", "O2", "O3"}));
  app.add_flag("--print-ir", print_ir, "print the IR (ONNX text with types) after compiling");
  app.add_option("--bind-dim", bind_dims,
                 "fix a symbolic dim, e.g. --bind-dim batch=16 (repeatable)");
  app.add_option("--external-data-threshold", external_threshold,
                 "write tensors of at least this many bytes to OUT.onnx.data (0: inline)");
  app.add_flag("--list-ops", list_ops, "list the ONNX ops amp supports and exit");
  app.add_flag("--version", version, "print the version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }
  return amp::cli::RunMain("amp-compile", [&]() -> amp::Status {
    if (version) {
      std::printf("amp-compile %s\n", amp::cli::kVersion);
      return amp::Status::Ok();
    }
    if (list_ops) {
      for (auto op : amp::SupportedOps())
        std::printf("%.*s\n", static_cast<int>(op.size()), op.data());
      return amp::Status::Ok();
    }
    if (input.empty()) return amp::InvalidArgument("no input model given (see --help)");
    if (opt_level != "O0")
      return amp::Unimplemented("--opt-level ", opt_level,
                                " (mixed precision) is not implemented yet; use --opt-level O0");
    amp::PassOptions options;
    AMP_ASSIGN_OR_RETURN(options.dim_bindings, amp::cli::ParseDimBindings(bind_dims));
    // Progress is reported only once everything succeeded, so that a failure
    // prints exactly one line.
    std::string report;
    AMP_ASSIGN_OR_RETURN(amp::Model model, amp::LoadModel(input));
    report += amp::StrCat("amp-compile: imported ", input, ": ", Summary(model), "\n");
    std::string passes = options.dim_bindings.empty() ? "" : "bind-dims,fold-shapes,dce";
    AMP_ASSIGN_OR_RETURN(amp::PassPipeline pipeline, amp::BuildPipeline(passes, options));
    AMP_ASSIGN_OR_RETURN(bool changed, pipeline.Run(model));
    if (changed) report += amp::StrCat("amp-compile: after ", passes, ": ", Summary(model), "\n");
    report += amp::StrCat("amp-compile: ", opt_level, ": no precision change (all ",
                          model.graph->num_nodes(), " nodes keep their types)\n");
    if (!output.empty()) {
      amp::ExportOptions eo;
      eo.external_data_threshold = external_threshold;
      AMP_RETURN_IF_ERROR(amp::SaveModelFile(model, output, eo));
      report += amp::StrCat("amp-compile: wrote ", output, "\n");
    }
    std::fputs(report.c_str(), stderr);
    if (print_ir) std::cout << amp::PrintModel(model);
    return amp::Status::Ok();
  });
}
