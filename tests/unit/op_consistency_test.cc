// Every op's record (ops/op_def.h) is complete and agrees with the backends'
// kernel tables, and every backend runs the specialized steps of the shipped
// models it claims. What a newcomer adding an op would otherwise have to keep
// in sync by hand.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "codegen/executable.h"
#include "compiler/loader.h"
#include "ops/op_def.h"
#include "passes/pipelines.h"
#include "runtime/backend.h"

namespace amp {
namespace {

std::string Key(std::string_view domain, std::string_view op) {
  return domain.empty() ? std::string(op) : StrCat(domain, ":", op);
}

// Ops that need no kernel, and why.
const std::map<std::string, std::string>& NoKernelNeeded() {
  static const std::map<std::string, std::string> m = {
      {"ai.onnx.preview.training:Gradient",
       "expanded into its backward graph by the compiler (pipelines::Lower)"},
      {"NonZero", "its output shape depends on data: runs only where it folds to a constant"},
  };
  return m;
}

TEST(OpConsistencyTest, EveryRecordIsComplete) {
  std::set<std::string> seen;
  for (const OpDef& d : AllOps()) {
    std::string key = Key(d.domain, d.op_type);
    SCOPED_TRACE(key);
    EXPECT_TRUE(seen.insert(key).second) << "two records for " << key;
    EXPECT_NE(d.infer, nullptr) << "no type and shape inference";
    const OpDef::Arity& a = d.arity;
    EXPECT_TRUE(a.min_inputs >= 0 && (a.max_inputs < 0 || a.max_inputs >= a.min_inputs));
    EXPECT_TRUE(a.min_outputs >= 0 && (a.max_outputs < 0 || a.max_outputs >= a.min_outputs));
    // A precision class with its reason (what the report prints).
    EXPECT_NE(d.precision.op_class, OpClass::kUnlisted) << "no precision class";
    EXPECT_NE(d.precision.reason, nullptr);
    // A gradient rule, or the reason there is none: never both, never neither.
    EXPECT_NE(d.grad == nullptr, d.no_grad == nullptr)
        << (d.grad ? "a rule and a reason for having none" : "neither a rule nor a reason");
    // Input slots named by the record exist.
    for (const std::vector<int>* slots : {&d.shape_inputs, &d.fp32_inputs, &d.nondiff_inputs})
      for (int slot : *slots)
        EXPECT_TRUE(slot >= 0 && (a.max_inputs < 0 || slot < a.max_inputs)) << "slot " << slot;
    // The lookup finds it (both spellings of the default domain).
    EXPECT_EQ(FindOp(d.domain, d.op_type), &d);
    if (d.domain.empty()) {
      EXPECT_EQ(FindOp("ai.onnx", d.op_type), &d);
    }
  }
}

TEST(OpConsistencyTest, TheCpuBackendHasAKernelForEveryRecordAndNoOther) {
  auto names = KernelOpNames("cpu");
  ASSERT_TRUE(names.ok()) << names.status().message();
  std::set<std::string> kernels(names->begin(), names->end());
  for (const OpDef& d : AllOps()) {
    std::string key = Key(d.domain, d.op_type);
    if (NoKernelNeeded().count(key)) {
      EXPECT_FALSE(kernels.count(key)) << key << " has a kernel; drop it from NoKernelNeeded";
      continue;
    }
    EXPECT_TRUE(kernels.count(key)) << key << " has a record but no CPU kernel";
  }
  for (const std::string& key : kernels) {
    auto colon = key.find(':');
    std::string domain = colon == std::string::npos ? "" : key.substr(0, colon);
    std::string op = colon == std::string::npos ? key : key.substr(colon + 1);
    EXPECT_NE(FindOp(domain, op), nullptr) << "a CPU kernel for " << key << " but no record";
  }
}

// A backend that claims everything: specialization then lists every op a
// step runs.
class AnyKernel : public KernelSupport {
 public:
  std::string_view name() const override { return "any"; }
  Status Supports(const Node&) const override { return Status::Ok(); }
  bool HasKernel(std::string_view, std::string_view) const override { return true; }
};

struct Step {
  std::string model, file, optimizer;
  bool mixed;  // O1 with dynamic loss scaling, else FP32
};

const std::vector<Step>& ShippedSteps() {
  static const std::vector<Step> steps = [] {
    std::vector<Step> s;
    for (const char* model : {"mlp", "cnn", "tfm"})
      for (const char* file : {"model.onnx", "model.dynamo_eval.onnx"}) {
        s.push_back({model, file, "sgd", false});
        s.push_back({model, file, "adam", false});  // fused without a skip flag
        s.push_back({model, file, "adamw", true});
      }
    return s;
  }();
  return steps;
}

// The ops of `step`'s specialized graph (batch 2, fused optimizer), as keys.
StatusOr<std::set<std::string>> SpecializedOps(const Step& step) {
  AMP_ASSIGN_OR_RETURN(Model m,
                       LoadModel(StrCat(AMP_SOURCE_DIR, "/models/", step.model, "/", step.file)));
  pipelines::TrainingOptions t;
  t.optimizer.kind = step.optimizer;
  if (step.mixed) t.loss_scale = LossScaleOptions{};
  PassPipeline p = pipelines::Lower();
  p.Append(pipelines::Training(t));
  PrecisionPolicy policy;
  policy.level = step.mixed ? OptLevel::kO1 : OptLevel::kO0;
  p.Append(pipelines::ForLevel(policy));
  AMP_RETURN_IF_ERROR(p.Run(m).status());
  SpecializeRequest r;
  for (const Value* v : m.graph->inputs()) {
    std::vector<int64_t> dims;
    if (v->type().shape)
      for (const Dim& d : *v->type().shape) dims.push_back(d.is_static() ? d.value() : 2);
    r.input_dims[v->name()] = dims;
  }
  r.fuse_optimizer = true;
  AMP_ASSIGN_OR_RETURN(Executable exe, Specialize(m, r, AnyKernel()));
  std::set<std::string> ops;
  for (const Call& c : exe.init) ops.insert(Key(c.node->domain(), c.node->op_type()));
  for (const Call& c : exe.program) ops.insert(Key(c.node->domain(), c.node->op_type()));
  return ops;
}

// Per backend, the ops of the shipped steps it has no kernel for.
std::map<std::string, std::set<std::string>> Missing(const std::string& device) {
  std::map<std::string, std::set<std::string>> missing;
  auto names = KernelOpNames(device);
  EXPECT_TRUE(names.ok()) << names.status().message();
  if (!names.ok()) return missing;
  std::set<std::string> kernels(names->begin(), names->end());
  for (const Step& s : ShippedSteps()) {
    auto ops = SpecializedOps(s);
    EXPECT_TRUE(ops.ok()) << s.model << "/" << s.file << ": " << ops.status().message();
    if (!ops.ok()) continue;
    std::string name = StrCat(s.model, "/", s.file, " ", s.optimizer, s.mixed ? " O1" : " O0");
    for (const std::string& op : *ops)
      if (!kernels.count(op)) missing[name].insert(op);
  }
  return missing;
}

std::string Describe(const std::map<std::string, std::set<std::string>>& missing) {
  std::string out;
  for (const auto& [step, ops] : missing) {
    out += "  " + step + ":";
    for (const std::string& op : ops) out += " " + op;
    out += "\n";
  }
  return out;
}

TEST(OpConsistencyTest, TheCpuBackendRunsEveryShippedStep) {
  auto missing = Missing("cpu");
  EXPECT_TRUE(missing.empty()) << "the CPU backend lacks:\n" << Describe(missing);
}

// The models the CUDA backend claims (README, docs/ARCHITECTURE.md): their
// steps must have a kernel for every op. The others are listed, so that the
// list shrinks as kernels arrive (issue 15).
TEST(OpConsistencyTest, TheCudaBackendRunsTheStepsItClaims) {
  if (!KernelOpNames("cuda").ok()) GTEST_SKIP() << "this build has no CUDA support";
  const std::set<std::string> claimed = {"mlp", "tfm"};
  auto missing = Missing("cuda");
  std::map<std::string, std::set<std::string>> claimed_missing, others;
  for (const auto& [step, ops] : missing)
    (claimed.count(step.substr(0, step.find('/'))) ? claimed_missing : others)[step] = ops;
  EXPECT_TRUE(claimed_missing.empty()) << "the CUDA backend lacks, in steps it claims:\n"
                                       << Describe(claimed_missing);
  std::printf("CUDA kernels missing in the steps it does not claim yet:\n%s",
              Describe(others).c_str());
}

}  // namespace
}  // namespace amp
