// The checkpoint loader (runtime/checkpoint.h) on arbitrary bytes as
// DIR/checkpoint.npz, against a Executor of a small training step
// (mlp_step.onnx: models/mlp, Adam, O1 fp16 with dynamic loss scaling, only
// head.bias trained, so that its checkpoint is small). The input's zip CRCs
// are recomputed first (fuzz_util.h) so that mutations reach the contents. A
// checkpoint that loads is then trained on for a step, as amp-train --resume
// does.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "runtime/checkpoint.h"
#include "runtime/executor.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

amp::Executor* g_session = nullptr;  // lives for the whole process
std::string g_dir;
amp::Tensor g_input, g_labels, g_lr;

void RemoveDir() {
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  auto session = amp::Executor::Open(AMP_SOURCE_DIR "/tests/fuzz/mlp_step.onnx");
  if (!session.ok()) {
    std::fprintf(stderr, "checkpoint_fuzz: %s\n", std::string(session.status().message()).c_str());
    std::abort();
  }
  g_session = session->release();
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "amp_checkpoint_fuzz.XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) {
    std::perror("checkpoint_fuzz: mkdtemp");
    std::abort();
  }
  g_dir = tmpl;
  std::atexit(RemoveDir);
  constexpr int64_t kBatch = 4;
  g_input = amp::Tensor::FromVector<float>(amp::DType::kFloat32, {kBatch, 64},
                                           std::vector<float>(kBatch * 64, 0.5f));
  g_labels = amp::Tensor::FromVector<int64_t>(amp::DType::kInt64, {kBatch}, {0, 3, 9, 1});
  g_lr = amp::Tensor::FromVector<float>(amp::DType::kFloat32, {}, {1e-3f});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  amp::fuzz::FixZipCrcs(bytes);
  {
    std::ofstream f(amp::CheckpointPath(g_dir), std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(size));
    if (!f) std::abort();
  }
  auto meta = amp::LoadCheckpoint(*g_session, g_dir);
  if (meta.ok()) {
    if (!g_session->SetInput("input", g_input).ok() ||
        !g_session->SetInput("labels", g_labels).ok() || !g_session->SetInput("lr", g_lr).ok())
      std::abort();
    (void)g_session->Run();
  }
  return 0;
}
