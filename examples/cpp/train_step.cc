// An embedding program: compiles an ONNX model to a mixed-precision training
// step with amp's installed library and trains it a few steps on arrays of its
// own, printing the loss of each step.
//
//   train_step MODEL.onnx [STEPS] [BATCH] [DEVICE] [OUT.onnx]
//
// The data is a fixed function of the sample index s (so any other program
// can make the same batches): feature j of sample s is
// ((s * F + j) * 7919 mod 201 - 100) / 64 and its class is s * 31 mod C, for
// F features and C classes; step k takes samples k*BATCH .. (k+1)*BATCH-1.
// OUT.onnx, when given, receives the compiled step (to compare with amp-train).
#include <amp/amp.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

int Fail(const amp::Status& s) {
  std::fprintf(stderr, "train_step: error: %s\n", s.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.onnx [STEPS] [BATCH] [DEVICE] [OUT.onnx]\n", argv[0]);
    return 2;
  }
  const std::string model = argv[1];
  const int steps = argc > 2 ? std::atoi(argv[2]) : 5;
  const int64_t batch = argc > 3 ? std::atoll(argv[3]) : 16;
  const std::string device = argc > 4 ? argv[4] : "cpu";
  std::printf("amp %s (headers %s)\n", amp::Version(), AMP_VERSION);

  // What `amp-compile MODEL --loss cross_entropy --optimizer adam --lr 1e-3` does.
  amp::CompileOptions options;
  options.loss = "cross_entropy";
  options.optimizer = "adam";
  options.lr = 1e-3f;
  amp::StatusOr<amp::CompiledModel> step = amp::Compile(model, options);
  if (!step.ok()) return Fail(step.status());
  if (argc > 5)
    if (amp::Status s = step->Save(argv[5]); !s.ok()) return Fail(s);

  amp::SessionOptions so;
  so.device = device;
  auto session = amp::Session::Create(*step, so);
  if (!session.ok()) return Fail(session.status());
  amp::Session& s = **session;

  // The input's feature count and the logits' class count, from the step.
  int64_t features = 0, classes = 0;
  for (const amp::ValueInfo& in : s.inputs())
    if (in.name == "input" && in.dims.size() == 2) features = in.dims[1];
  for (const amp::ValueInfo& out : s.outputs())  // the loss, then the model's outputs
    if (out.dims.size() == 2) classes = out.dims[1];
  if (features <= 0 || classes <= 0) {
    std::fprintf(stderr,
                 "train_step: expected an input 'input' [batch, F] and logits [batch, C]\n");
    return 1;
  }

  std::vector<float> x(static_cast<size_t>(batch * features));
  std::vector<int64_t> y(static_cast<size_t>(batch));
  for (int k = 0; k < steps; ++k) {
    for (int64_t b = 0; b < batch; ++b) {
      int64_t sample = k * batch + b;
      for (int64_t j = 0; j < features; ++j)
        x[b * features + j] = static_cast<float>((sample * features + j) * 7919 % 201 - 100) / 64;
      y[b] = sample * 31 % classes;
    }
    if (amp::Status st = s.SetInput("input", amp::TensorView::Of(x, {batch, features})); !st.ok())
      return Fail(st);
    if (amp::Status st = s.SetInput("labels", amp::TensorView::Of(y, {batch})); !st.ok())
      return Fail(st);
    amp::StatusOr<double> scale = s.LossScale();  // the scale this step uses
    if (amp::Status st = s.Run(); !st.ok()) return Fail(st);
    std::printf("step %d loss %.9g scale %g skipped %d\n", k, *s.Loss(), *scale,
                static_cast<int>(*s.StepSkipped()));
  }
  std::printf("trained %zu parameters for %lld steps on %s\n", s.ParameterNames().size(),
              static_cast<long long>(s.step()), s.device().c_str());
  return 0;
}
