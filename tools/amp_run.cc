// amp-run: runs ONNX models on amp's runtime and compares with expected
// outputs, the way onnxruntime's onnx_test_runner does.
//
//   amp-run MODEL.onnx --test-dir DIR   # DIR/test_data_set_*/{input,output}_*.pb
//   amp-run --suite /usr/share/libonnx-testdata/data/node [--expect-fail FILE]
//
// A test whose model amp does not support (an op, a type, a feature) is
// skipped, with the reason; a supported one must match every output within
// rtol 1e-3 and atol 1e-7 (ONNX's backend-test tolerances; integers and
// booleans exactly). The exit code is 0 only when nothing failed.
#include <cstring>
#include <filesystem>
#include <regex>
#include <sstream>

#include "compiler/loader.h"
#include "compiler/onnx_import.h"
#include "passes/pipelines.h"
#include "runtime/executor.h"
#include "tools/cli_common.h"

namespace fs = std::filesystem;

namespace amp {
namespace {

enum class Outcome { kPass, kFail, kSkip };

struct Result {
  Outcome outcome;
  std::string why;
};

// ONNX's generated test data stores bfloat16 tensors as uint16.
Tensor AsBFloat16(const Tensor& t) {
  Tensor b(DType::kBFloat16, t.dims());
  if (t.nbytes()) std::memcpy(b.mutable_data(), t.data(), t.nbytes());
  return b;
}

// A test's data file. Refuses FIFOs and devices (a link to /dev/zero) before
// reading; the size read is the file's own.
StatusOr<Tensor> ReadTensorFile(const fs::path& p) {
  AMP_ASSIGN_OR_RETURN(auto file, MappedFile::Open(p.string()));
  std::string what = StrCat(p.parent_path().filename().string(), "/", p.filename().string());
  return ImportTensorBytes(file->data(), file->size(), what);
}

std::vector<fs::path> Sorted(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
  // input_10.pb after input_9.pb.
  std::sort(out.begin(), out.end(), [](const fs::path& a, const fs::path& b) {
    std::string x = a.filename().string(), y = b.filename().string();
    return x.size() != y.size() ? x.size() < y.size() : x < y;
  });
  return out;
}

// Compares one output; empty string when it matches.
std::string Compare(const Tensor& got, const Tensor& want, const std::string& name) {
  if (got.dtype() != want.dtype())
    return StrCat("output '", name, "' is ", DTypeName(got.dtype()), ", expected ",
                  DTypeName(want.dtype()));
  if (got.dims() != want.dims()) {
    return StrCat("output '", name, "' has shape ", ShapeToString(ShapeFromDims(got.dims())),
                  ", expected ", ShapeToString(ShapeFromDims(want.dims())));
  }
  bool exact = !IsFloat(got.dtype());
  for (int64_t i = 0; i < got.num_elements(); ++i) {
    double a = got.GetDouble(i), b = want.GetDouble(i);
    if (exact) {
      if (got.GetInt(i) != want.GetInt(i))
        return StrCat("output '", name, "' element ", i, ": ", got.GetInt(i), ", expected ",
                      want.GetInt(i));
      continue;
    }
    if (std::isnan(a) && std::isnan(b)) continue;
    if (std::isinf(a) || std::isinf(b)) {
      if (a != b) return StrCat("output '", name, "' element ", i, ": ", a, ", expected ", b);
      continue;
    }
    if (!(std::abs(a - b) <= 1e-7 + 1e-3 * std::abs(b)))
      return StrCat("output '", name, "' element ", i, ": ", a, ", expected ", b,
                    " (rtol 1e-3, atol 1e-7)");
  }
  return "";
}

// Runs every data set of one test folder (or the data sets under test_dir).
Result RunTest(const fs::path& model_path, const fs::path& test_dir) {
  auto sets = Sorted(test_dir, "test_data_set_");
  if (sets.empty()) return {Outcome::kSkip, "no test_data_set_* folders"};
  ExecutorOptions so;
  so.mode = TrainingInfoMode::kForward;
  so.freeze_shape_inputs = true;  // e.g. Reshape's shape given as an input
  // The compile path first (a Gradient node becomes its backward graph),
  // then the runtime.
  auto opened = [&]() -> StatusOr<std::unique_ptr<Executor>> {
    AMP_ASSIGN_OR_RETURN(Model m, LoadModel(model_path.string(), so.mode));
    AMP_RETURN_IF_ERROR(pipelines::Lower().Run(m).status());
    return Executor::Create(std::move(m), so);
  }();
  if (!opened.ok()) {
    // Unsupported ops, types and features are skips; anything else (a model
    // amp should read but cannot) is a failure.
    bool skip = opened.status().code() == StatusCode::kUnimplemented;
    return {skip ? Outcome::kSkip : Outcome::kFail, opened.status().message()};
  }
  std::unique_ptr<Executor> session = std::move(*opened);
  std::vector<std::string> input_names, output_names;
  for (const Value* v : session->model().graph->inputs()) input_names.push_back(v->name());
  for (const Value* v : session->model().graph->outputs()) output_names.push_back(v->name());
  for (const fs::path& set : sets) {
    auto inputs = Sorted(set, "input_");
    auto outputs = Sorted(set, "output_");
    if (inputs.size() > input_names.size())
      return {Outcome::kFail, StrCat(set.filename().string(), " has more inputs than the model")};
    std::map<std::string, Tensor> bound;
    for (size_t i = 0; i < inputs.size(); ++i) {
      // Data that cannot be read is a failure, never a skip: a test that
      // cannot be checked must not look like one that needs no check.
      auto t = ReadTensorFile(inputs[i]);
      if (!t.ok()) return {Outcome::kFail, t.status().message()};
      const Value* in = session->model().graph->inputs()[i];
      bound[input_names[i]] =
          in->dtype() == DType::kBFloat16 && t->dtype() == DType::kUInt16 ? AsBFloat16(*t) : *t;
    }
    Status st = Status::Ok();
    for (const auto& [name, t] : bound)
      if (st.ok()) st = session->SetInput(name, t);
    if (st.ok()) st = session->Run();
    if (!st.ok()) {
      bool skip = st.code() == StatusCode::kUnimplemented;
      return {skip ? Outcome::kSkip : Outcome::kFail, st.message()};
    }
    for (size_t i = 0; i < outputs.size() && i < output_names.size(); ++i) {
      auto want = ReadTensorFile(outputs[i]);
      if (!want.ok()) return {Outcome::kFail, want.status().message()};
      auto got = session->Fetch(output_names[i]);
      if (!got.ok()) return {Outcome::kFail, got.status().message()};
      if (got->dtype() == DType::kBFloat16 && want->dtype() == DType::kUInt16)
        *want = AsBFloat16(*want);
      std::string diff = Compare(*got, *want, output_names[i]);
      if (!diff.empty()) return {Outcome::kFail, StrCat(set.filename().string(), ": ", diff)};
    }
  }
  return {Outcome::kPass, ""};
}

struct Options {
  std::string model, test_dir, suite, expect_fail, filter;
  bool verbose = false;
};

Status Main(const Options& o, int& exit_code) {
  std::vector<std::pair<std::string, std::pair<fs::path, fs::path>>> tests;
  if (!o.suite.empty()) {
    std::error_code ec;
    if (!fs::is_directory(o.suite, ec)) return NotFound("no test suite folder '", o.suite, "'");
    std::regex filter(o.filter.empty() ? ".*" : o.filter);
    for (const auto& e : fs::directory_iterator(o.suite)) {
      std::string name = e.path().filename().string();
      if (!e.is_directory() || !std::regex_search(name, filter)) continue;
      tests.push_back({name, {e.path() / "model.onnx", e.path()}});
    }
    std::sort(tests.begin(), tests.end());
  } else {
    if (o.model.empty() || o.test_dir.empty())
      return InvalidArgument("give MODEL.onnx --test-dir DIR, or --suite DIR");
    tests.push_back({fs::path(o.model).parent_path().filename().string(), {o.model, o.test_dir}});
  }
  // Tests known to fail, one "name: reason" per line.
  std::map<std::string, std::string> expected;
  if (!o.expect_fail.empty()) {
    AMP_ASSIGN_OR_RETURN(std::string text, ReadRegularFile(o.expect_fail));
    std::istringstream f(text);
    std::string line;
    while (std::getline(f, line)) {
      if (line.empty() || line[0] == '#') continue;
      size_t colon = line.find(':');
      expected[line.substr(0, colon)] = colon == std::string::npos ? "" : line.substr(colon + 1);
    }
  }
  int pass = 0, fail = 0, skip = 0, xfail = 0;
  std::vector<std::string> unexpected_pass;
  for (const auto& [name, paths] : tests) {
    Result r = RunTest(paths.first, paths.second);
    bool listed = expected.count(name) != 0;
    switch (r.outcome) {
      case Outcome::kPass:
        ++pass;
        if (listed) unexpected_pass.push_back(name);
        if (o.verbose) std::printf("PASS %s\n", name.c_str());
        break;
      case Outcome::kFail:
        if (listed) {
          ++xfail;
          std::printf("XFAIL %s: %s\n", name.c_str(), r.why.c_str());
        } else {
          ++fail;
          std::printf("FAIL %s: %s\n", name.c_str(), r.why.c_str());
        }
        break;
      case Outcome::kSkip:
        ++skip;
        std::printf("SKIP %s: %s\n", name.c_str(), r.why.c_str());
        break;
    }
  }
  for (const std::string& n : unexpected_pass)
    std::printf("XPASS %s: listed in %s but passes; remove it from the list\n", n.c_str(),
                o.expect_fail.c_str());
  std::printf("amp-run: %d passed, %d failed, %d expected failures, %d skipped (of %zu)\n", pass,
              fail, xfail, skip, tests.size());
  exit_code = (fail == 0 && unexpected_pass.empty()) ? 0 : 1;
  return Status::Ok();
}

}  // namespace
}  // namespace amp

int main(int argc, char** argv) {
  amp::Options o;
  CLI::App app{"amp-run: run ONNX models on amp's runtime against expected outputs", "amp-run"};
  app.set_version_flag("--version", amp::cli::kVersion);
  app.add_option("model", o.model, "the model (.onnx)");
  app.add_option("--test-dir", o.test_dir, "folder with test_data_set_*/input_*.pb, output_*.pb");
  app.add_option("--suite", o.suite,
                 "a folder of test folders (each with model.onnx and data sets)");
  app.add_option("--filter", o.filter, "with --suite: only tests whose name matches this regex");
  app.add_option("--expect-fail", o.expect_fail,
                 "tests known to fail, one 'name: reason' per line");
  app.add_flag("-v,--verbose", o.verbose, "print passing tests too");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }
  int exit_code = 1;
  int rc = amp::cli::RunMain("amp-run", [&] { return amp::Main(o, exit_code); });
  return rc != 0 ? rc : exit_code;
}
