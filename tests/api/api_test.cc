// The public C++ API, seen as a user sees it: this file includes only
// <amp/amp.h> and links only amp::runtime (libamp), so a public header that
// needs an internal one fails to build here.
#include <amp/amp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

const std::string kMlp = std::string(AMP_SOURCE_DIR) + "/models/mlp/model.onnx";
constexpr int64_t kBatch = 8, kFeatures = 64, kClasses = 10;

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("amp_api_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

amp::CompileOptions AdamO1() {
  amp::CompileOptions o;
  o.loss = "cross_entropy";
  o.optimizer = "adam";
  o.lr = 1e-3f;
  return o;
}

// Step k's batch: the data formula of examples/cpp/train_step.cc.
void Bind(amp::Session& s, int k) {
  std::vector<float> x(kBatch * kFeatures);
  std::vector<int64_t> y(kBatch);
  for (int64_t b = 0; b < kBatch; ++b) {
    int64_t sample = k * kBatch + b;
    for (int64_t j = 0; j < kFeatures; ++j)
      x[b * kFeatures + j] = static_cast<float>((sample * kFeatures + j) * 7919 % 201 - 100) / 64;
    y[b] = sample * 31 % kClasses;
  }
  ASSERT_TRUE(s.SetInput("input", amp::TensorView::Of(x, {kBatch, kFeatures})).ok());
  ASSERT_TRUE(s.SetInput("labels", amp::TensorView::Of(y, {kBatch})).ok());
}

// An IEEE half's value (the test reads fp16 outputs without amp's internals).
double Half(uint16_t h) {
  int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  double v = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, exp - 25);
  return (h & 0x8000) ? -v : v;
}

std::unique_ptr<amp::Session> Open(const amp::CompiledModel& m, amp::SessionOptions o = {}) {
  auto s = amp::Session::Create(m, o);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? std::move(*s) : nullptr;
}

std::vector<double> Train(amp::Session& s, int first, int steps) {
  std::vector<double> losses;
  for (int k = first; k < first + steps; ++k) {
    Bind(s, k);
    amp::Status st = s.Run();
    EXPECT_TRUE(st.ok()) << st.message();
    auto loss = s.Loss();
    EXPECT_TRUE(loss.ok());
    losses.push_back(loss.ok() ? *loss : NAN);
  }
  return losses;
}

TEST(Api, VersionIsTheOneCompiledAgainst) { EXPECT_STREQ(amp::Version(), AMP_VERSION); }

TEST(Api, CompilesAndTrainsTheMlp) {
  auto step = amp::Compile(kMlp, AdamO1());
  ASSERT_TRUE(step.ok()) << step.status().message();
  EXPECT_FALSE(step->onnx().empty());
  EXPECT_NE(step->report_json().find("\"summary\""), std::string::npos);
  auto s = Open(*step);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->is_training());
  EXPECT_EQ(s->device(), "cpu");
  EXPECT_FLOAT_EQ(s->learning_rate(), 1e-3);
  std::vector<std::string> inputs;
  for (const amp::ValueInfo& v : s->inputs()) inputs.push_back(v.name);
  EXPECT_EQ(inputs, (std::vector<std::string>{"input", "labels", "lr"}));
  EXPECT_EQ(s->inputs()[0].dims, (std::vector<int64_t>{-1, kFeatures}));
  EXPECT_EQ(s->inputs()[0].dim_names[0], "batch");
  // The same batch twice: Adam lowers its loss (random init, fp16 O1).
  std::vector<double> losses;
  for (int i = 0; i < 6; ++i) {
    Bind(*s, 0);
    ASSERT_TRUE(s->Run().ok());
    losses.push_back(*s->Loss());
    EXPECT_FALSE(*s->StepSkipped());
  }
  EXPECT_LT(losses.back(), losses.front());
  EXPECT_GT(losses.front(), std::log(10.0) * 0.5);  // near ln(10) at init
  EXPECT_EQ(s->step(), 6);
  EXPECT_DOUBLE_EQ(*s->LossScale(), 65536.0);  // dynamic, no overflow, no growth yet
  std::vector<std::string> outputs;
  for (const amp::ValueInfo& v : s->outputs()) outputs.push_back(v.name);
  EXPECT_EQ(outputs, (std::vector<std::string>{"loss", "logits"}));
  // An intermediate is not kept unless asked for: its memory was reused.
  std::string hidden = "/body/body.1/Relu_output_0";
  EXPECT_EQ(s->Fetch(hidden).status().code(), amp::StatusCode::kNotFound);
  EXPECT_NE(s->Fetch(hidden).status().message().find("SessionOptions::fetch"), std::string::npos)
      << s->Fetch(hidden).status().message();
  amp::SessionOptions keep;
  keep.fetch = {hidden};
  auto k = Open(*step, keep);
  ASSERT_TRUE(k);
  Bind(*k, 0);
  ASSERT_TRUE(k->Run().ok());
  EXPECT_EQ(*k->Loss(), losses.front());  // keeping a value changes nothing else
  auto relu = k->Fetch(hidden);
  ASSERT_TRUE(relu.ok()) << relu.status().message();
  EXPECT_EQ(relu->num_elements(), kBatch * 128);
  auto logits = s->Fetch("logits");
  ASSERT_TRUE(logits.ok()) << logits.status().message();
  EXPECT_EQ(logits->dims(), (std::vector<int64_t>{kBatch, kClasses}));
  // O1: the last Gemm's output is half, as under torch.autocast.
  EXPECT_EQ(logits->dtype(), amp::DType::kFloat16);
}

TEST(Api, LearningRateZeroLeavesTheParameters) {
  auto step = amp::Compile(kMlp, AdamO1());
  ASSERT_TRUE(step.ok());
  auto s = Open(*step);
  ASSERT_TRUE(s);
  ASSERT_FALSE(s->ParameterNames().empty());
  std::string p = s->ParameterNames()[0];
  auto before = s->Fetch(p);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(s->SetLearningRate(0).ok());
  Train(*s, 0, 2);
  auto after = s->Fetch(p);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(before->bytes(), after->bytes());
  ASSERT_TRUE(s->SetLearningRate(1e-2).ok());
  Train(*s, 0, 1);
  EXPECT_NE(before->bytes(), s->Fetch(p)->bytes());
  EXPECT_EQ(s->SetLearningRate(-1).code(), amp::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->SetLearningRate(NAN).code(), amp::StatusCode::kInvalidArgument);
}

TEST(Api, CheckpointResumesBitIdentically) {
  auto step = amp::Compile(kMlp, AdamO1());
  ASSERT_TRUE(step.ok());
  auto a = Open(*step);
  ASSERT_TRUE(a);
  Train(*a, 0, 2);
  std::string dir = TempPath("ckpt");
  ASSERT_TRUE(a->SaveCheckpoint(dir, R"({"who": "api_test"})").ok());
  std::vector<double> straight = Train(*a, 2, 3);

  auto b = Open(*step);
  ASSERT_TRUE(b);
  auto meta = b->LoadCheckpoint(dir);
  ASSERT_TRUE(meta.ok()) << meta.status().message();
  EXPECT_NE(meta->find("api_test"), std::string::npos);
  EXPECT_EQ(b->step(), 2);
  std::vector<double> resumed = Train(*b, 2, 3);
  EXPECT_EQ(straight, resumed);  // bit-identical
  std::filesystem::remove_all(dir);

  EXPECT_EQ(a->SaveCheckpoint(dir, "{not json").code(), amp::StatusCode::kInvalidArgument);
  EXPECT_FALSE(b->LoadCheckpoint(TempPath("no_such_checkpoint")).ok());
}

TEST(Api, ExportInferenceCarriesTheTrainedWeights) {
  auto step = amp::Compile(kMlp, AdamO1());
  ASSERT_TRUE(step.ok());
  auto s = Open(*step);
  ASSERT_TRUE(s);
  Train(*s, 0, 3);
  std::string path = TempPath("inference.onnx");
  ASSERT_TRUE(s->ExportInference(path).ok());
  auto inf = amp::Session::Open(path);  // an inference model: its forward graph
  ASSERT_TRUE(inf.ok()) << inf.status().message();
  EXPECT_FALSE((*inf)->is_training());
  for (const std::string& p : s->ParameterNames()) {
    auto trained = s->Fetch(p), exported = (*inf)->Fetch(p);
    ASSERT_TRUE(trained.ok() && exported.ok()) << p;
    EXPECT_EQ(trained->bytes(), exported->bytes()) << p;
  }
  // It runs, and agrees with the training session's forward pass on the same
  // batch (the step's logits are computed before the update; lr 0 keeps the
  // weights). The inference model is the FP32 forward graph; the step's
  // logits are fp16 (O1): they agree to the precision of an fp16 forward.
  std::vector<float> x(kBatch * kFeatures);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 29) / 29 - 0.5f;
  ASSERT_TRUE((*inf)->SetInput("input", amp::TensorView::Of(x, {kBatch, kFeatures})).ok());
  ASSERT_TRUE((*inf)->Run().ok());
  auto logits = (*inf)->Fetch("logits");
  ASSERT_TRUE(logits.ok());
  ASSERT_TRUE(s->SetLearningRate(0).ok());
  Bind(*s, 7);
  ASSERT_TRUE(s->SetInput("input", amp::TensorView::Of(x, {kBatch, kFeatures})).ok());
  ASSERT_TRUE(s->Run().ok());
  auto step_logits = s->Fetch("logits");
  ASSERT_TRUE(step_logits.ok());
  ASSERT_EQ(logits->dtype(), amp::DType::kFloat32);
  ASSERT_EQ(step_logits->dtype(), amp::DType::kFloat16);
  ASSERT_EQ(logits->num_elements(), kBatch * kClasses);
  ASSERT_EQ(logits->num_elements(), step_logits->num_elements());
  double largest = 0;
  for (int64_t i = 0; i < logits->num_elements(); ++i) {
    double a = logits->at<float>(i), b = Half(step_logits->at<uint16_t>(i));
    EXPECT_NEAR(a, b, 1e-2 * std::max(0.1, std::fabs(a))) << i;
    largest = std::max(largest, std::fabs(b));
  }
  EXPECT_GT(largest, 1e-3);  // not all zeros
  std::remove(path.c_str());
}

TEST(Api, SaveWritesWhatAmpCompileWouldRun) {
  auto step = amp::Compile(kMlp, AdamO1());
  ASSERT_TRUE(step.ok());
  std::string path = TempPath("step.onnx");
  ASSERT_TRUE(step->Save(path).ok());
  auto opened = amp::Session::Open(path);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  auto created = Open(*step);
  ASSERT_TRUE(created);
  EXPECT_EQ(Train(**opened, 0, 2), Train(*created, 0, 2));
  std::remove(path.c_str());
  EXPECT_EQ(amp::CompiledModel().Save(path).code(), amp::StatusCode::kInvalidArgument);
}

TEST(Api, RefusesWrongInputsWithAClearMessage) {
  auto step = amp::Compile(kMlp, AdamO1());
  ASSERT_TRUE(step.ok());
  auto s = Open(*step);
  ASSERT_TRUE(s);
  std::vector<float> x(kBatch * kFeatures, 0.5f);
  amp::Status st = s->SetInput("images", amp::TensorView::Of(x, {kBatch, kFeatures}));
  EXPECT_EQ(st.code(), amp::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("no input 'images'"), std::string::npos) << st.message();
  std::vector<double> xd(kBatch * kFeatures, 0.5);
  st = s->SetInput("input", amp::TensorView::Of(xd, {kBatch, kFeatures}));
  EXPECT_NE(st.message().find("the model expects float"), std::string::npos) << st.message();
  st = s->SetInput("input", amp::TensorView::Of(x, {kBatch * 2, kFeatures / 2}));
  EXPECT_NE(st.message().find("has shape"), std::string::npos) << st.message();
  st = s->SetInput("input", amp::TensorView(amp::DType::kFloat32, {kBatch, kFeatures}, nullptr));
  EXPECT_NE(st.message().find("null pointer"), std::string::npos) << st.message();
  st = s->SetInput("input", amp::TensorView(amp::DType::kFloat32, {-1, kFeatures}, x.data()));
  EXPECT_NE(st.message().find("negative"), std::string::npos) << st.message();
  st = s->SetInput("input", amp::TensorView(amp::DType::kFloat32, {kBatch, kFeatures}, x.data(),
                                            amp::Memory::kCuda));
  EXPECT_NE(st.message().find("CUDA memory"), std::string::npos) << st.message();
  // Run without labels: the error names the missing input, not a crash.
  ASSERT_TRUE(s->SetInput("input", amp::TensorView::Of(x, {kBatch, kFeatures})).ok());
  EXPECT_FALSE(s->Run().ok());
  std::string p = s->ParameterNames()[0];
  std::vector<float> wrong(3, 1.0f);
  st = s->SetParameter(p, amp::TensorView::Of(wrong, {3}));
  EXPECT_EQ(st.code(), amp::StatusCode::kInvalidArgument) << st.message();
  EXPECT_EQ(s->Fetch("no_such_value").status().code(), amp::StatusCode::kNotFound);
}

TEST(Api, RefusesBadOptionsAndModels) {
  amp::CompileOptions o = AdamO1();
  o.optimizer = "rmsprop";
  auto r = amp::Compile(kMlp, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), amp::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("sgd, adam, adamw"), std::string::npos)
      << r.status().message();
  o = AdamO1();
  o.opt_level = "O9";
  EXPECT_FALSE(amp::Compile(kMlp, o).ok());
  o = AdamO1();
  o.lr = INFINITY;
  EXPECT_FALSE(amp::Compile(kMlp, o).ok());
  o.lr = -1;
  EXPECT_FALSE(amp::Compile(kMlp, o).ok());
  // An unset lr (NaN) is PyTorch's default: 1e-3 for Adam; SGD has none.
  o = AdamO1();
  o.lr = NAN;
  EXPECT_TRUE(amp::Compile(kMlp, o).ok());
  o.optimizer = "sgd";
  r = amp::Compile(kMlp, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("sgd needs a learning rate"), std::string::npos)
      << r.status().message();
  o = AdamO1();
  o.loss_scale = "lots";
  r = amp::Compile(kMlp, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--loss-scale expects"), std::string::npos);
  o = AdamO1();
  o.bucket_mb = 0;
  r = amp::Compile(kMlp, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bucket_mb"), std::string::npos) << r.status().message();
  o = amp::CompileOptions();
  o.data_parallel = true;  // without a loss: nothing to reduce
  r = amp::Compile(kMlp, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("needs a training step"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(amp::Compile(TempPath("missing.onnx"), AdamO1()).status().code(),
            amp::StatusCode::kNotFound);
  // Garbage bytes and a truncated model: errors, not crashes.
  EXPECT_FALSE(amp::CompileBytes("this is not a model", AdamO1()).ok());
  std::ifstream f(kMlp, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string bytes = ss.str();
  ASSERT_TRUE(amp::CompileBytes(bytes, AdamO1()).ok());
  EXPECT_FALSE(amp::CompileBytes(bytes.substr(0, bytes.size() / 2), AdamO1()).ok());
  EXPECT_FALSE(amp::Session::FromBytes(bytes.substr(0, 100)).ok());
  amp::SessionOptions so;
  so.device = "tpu";
  EXPECT_FALSE(amp::Session::FromBytes(amp::Compile(kMlp, AdamO1())->onnx(), so).ok());
}

TEST(Api, InferenceCompileRunsTheForwardGraph) {
  amp::CompileOptions o;  // no loss: precision only
  o.bind_dims = {{"batch", kBatch}};
  auto m = amp::Compile(kMlp, o);
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto s = Open(*m);
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->is_training());
  EXPECT_EQ(s->inputs()[0].dims, (std::vector<int64_t>{kBatch, kFeatures}));
  EXPECT_EQ(s->SetLearningRate(0.1).code(), amp::StatusCode::kInvalidArgument);
  std::vector<float> x(kBatch * kFeatures);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 13) / 13 - 0.5f;
  ASSERT_TRUE(s->SetInput("input", amp::TensorView::Of(x, {kBatch, kFeatures})).ok());
  ASSERT_TRUE(s->Run().ok());
  auto logits = s->Fetch("logits");
  ASSERT_TRUE(logits.ok());
  for (int64_t i = 0; i < logits->num_elements(); ++i)
    EXPECT_TRUE(std::isfinite(logits->at<float>(i)));
  EXPECT_FALSE(s->Loss().ok());
  EXPECT_FALSE(s->SaveCheckpoint(TempPath("x")).ok());
}

}  // namespace

// A process started alone is rank 0 of a group of 1: a data-parallel step
// runs there as it would on one rank of a job (its AllReduce a copy), bit for
// bit the same as without the group; the group's collectives are identities.
TEST(Api, AProcessGroupOfOneTrainsAsAlone) {
  for (const char* v : {"RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v)) GTEST_SKIP() << "started by a launcher (" << v << ")";
  auto pg = amp::ProcessGroup::FromEnvironment(5);
  ASSERT_TRUE(pg.ok()) << pg.status().message();
  EXPECT_EQ((*pg)->rank(), 0);
  EXPECT_EQ((*pg)->size(), 1);
  EXPECT_EQ((*pg)->local_rank(), 0);
  EXPECT_EQ((*pg)->launcher(), "none");
  float x[2] = {1.5f, -2.0f};
  ASSERT_TRUE((*pg)->AllReduceMean(x, 2).ok());
  EXPECT_EQ(x[0], 1.5f);
  EXPECT_EQ(x[1], -2.0f);

  amp::CompileOptions o = AdamO1();
  o.data_parallel = true;
  auto m = amp::Compile(kMlp, o);
  ASSERT_TRUE(m.ok()) << m.status().message();
  amp::SessionOptions so;
  so.process_group = *pg;
  auto grouped = Open(*m, so);
  auto alone = Open(*m);
  ASSERT_TRUE(grouped && alone);
  std::vector<double> a = Train(*grouped, 0, 3), b = Train(*alone, 0, 3);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a, b);

  // A group is made for one device; a session on another is refused.
  auto gpu_group = amp::ProcessGroup::FromEnvironment(5, "cuda");
  ASSERT_TRUE(gpu_group.ok()) << gpu_group.status().message();  // alone: no NCCL needed
  EXPECT_EQ((*gpu_group)->device(), "cuda");
  so.process_group = *gpu_group;
  auto refused = amp::Session::Create(*m, so);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("made for device 'cuda'"), std::string::npos)
      << refused.status().message();
  EXPECT_FALSE(amp::ProcessGroup::FromEnvironment(5, "tpu").ok());
}
