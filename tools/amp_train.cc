// amp-train: trains a model that amp-compile turned into a training step.
//
//   amp-train step.onnx --data train.npz --batch-size 32 --steps 100
//       --log metrics.jsonl --checkpoint ckpt --save-every 50
//
// DATA.npz holds one array per graph input of the step (except the learning
// rate), named like the input, first axis = samples. Step k takes samples
// [k*B, (k+1)*B) modulo the sample count (in order, or in a seeded
// per-epoch shuffle with --shuffle); a last partial batch of an epoch is
// dropped. Batches depend only on the step number, so --resume continues
// bit-identically.
#include <unistd.h>

#ifdef AMP_HAVE_MPI
#include <mpi.h>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>

#include "compiler/loader.h"
#include "runtime/checkpoint.h"
#include "runtime/executor.h"
#include "runtime/export_inference.h"
#include "runtime/npz.h"
#include "runtime/process_group.h"
#include "tools/cli_common.h"

namespace amp {
namespace {

struct Flags {
  std::string model, data, device = "cpu", log, checkpoint, resume, export_inference;
  int64_t batch_size = 0, steps = -1, save_every = 0;
  uint64_t seed = 0;
  double lr = std::nan("");
  bool shuffle = false, eval = false, quiet = false, skip_nonfinite = false, profile = false;
  std::string fuse_optimizer = "auto";
  std::string fuse_elementwise = "on";
  double collective_timeout = 300;
  // Which of the numeric options were given.
  bool has_lr = false, has_steps = false, has_batch_size = false, has_save_every = false;
};

// Every number and path before anything is loaded or run, so a bad flag
// costs nothing and leaves nothing half written.
Status ValidateFlags(const Flags& f) {
  if (f.has_lr && (!std::isfinite(f.lr) || f.lr < 0))
    return InvalidArgument("--lr must be a finite number of 0 or more, not ", f.lr);
  if (f.has_steps && (f.steps < 0 || f.steps > kMaxStep))
    return InvalidArgument("--steps must be 0 to 2^53, not ", f.steps);
  if (f.has_batch_size && f.batch_size < 1)
    return InvalidArgument("--batch-size must be at least 1, not ", f.batch_size);
  if (f.has_save_every && f.save_every < 1)
    return InvalidArgument("--save-every must be at least 1, not ", f.save_every);
  if (!(f.collective_timeout > 0) || !std::isfinite(f.collective_timeout))
    return InvalidArgument("--collective-timeout must be a positive number of seconds, not ",
                           f.collective_timeout);
  if (f.has_save_every && f.checkpoint.empty())
    return InvalidArgument("--save-every needs --checkpoint FOLDER");
  if (!f.export_inference.empty()) {
    namespace fs = std::filesystem;
    fs::path out(f.export_inference);
    fs::path dir = out.parent_path().empty() ? fs::path(".") : out.parent_path();
    std::error_code ec;
    if (fs::is_directory(out, ec))
      return InvalidArgument("--export-inference '", f.export_inference,
                             "' is a folder; give a file name");
    if (!fs::is_directory(dir, ec))
      return NotFound("--export-inference: the folder '", dir.string(), "' does not exist");
    if (::access(dir.c_str(), W_OK) != 0)
      return IoError("--export-inference: cannot write in '", dir.string(),
                     "': ", std::strerror(errno));
  }
  return Status::Ok();
}

// Rows [rows[0], ...] of a sample-major array, as one batch.
Tensor Gather(const Tensor& all, const std::vector<int64_t>& rows) {
  std::vector<int64_t> dims = all.dims();
  int64_t per = dims.empty() ? 1 : all.num_elements() / std::max<int64_t>(dims[0], 1);
  size_t row_bytes = static_cast<size_t>(per) * DTypeSize(all.dtype());
  dims[0] = static_cast<int64_t>(rows.size());
  Tensor out(all.dtype(), dims);
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(out.mutable_data() + i * row_bytes, all.data() + rows[i] * row_bytes, row_bytes);
  return out;
}

class Batches {
 public:
  Batches(int64_t samples, int64_t batch, bool shuffle, uint64_t seed)
      : samples_(samples), batch_(batch), shuffle_(shuffle), seed_(seed) {}
  int64_t per_epoch() const { return samples_ / batch_; }
  // The sample indices of step k's batch.
  std::vector<int64_t> Rows(int64_t step) {
    int64_t epoch = step / per_epoch();
    int64_t first = (step % per_epoch()) * batch_;
    if (shuffle_ && epoch != cached_epoch_) {
      order_.resize(samples_);
      std::iota(order_.begin(), order_.end(), 0);
      std::mt19937_64 rng(seed_ * 1000003u + static_cast<uint64_t>(epoch));
      for (int64_t i = samples_ - 1; i > 0; --i) {  // Fisher-Yates, portable
        int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
        std::swap(order_[i], order_[j]);
      }
      cached_epoch_ = epoch;
    }
    std::vector<int64_t> rows(batch_);
    for (int64_t i = 0; i < batch_; ++i) rows[i] = shuffle_ ? order_[first + i] : first + i;
    return rows;
  }

 private:
  int64_t samples_, batch_;
  bool shuffle_;
  uint64_t seed_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> order_;
};

// A number as JSON: non-finite values (an overflowing fp16 loss) are null,
// since JSON has no inf or NaN.
std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string Bar(int64_t done, int64_t total, int width = 28) {
  int fill = total > 0 ? static_cast<int>(width * done / total) : width;
  std::string s = "[";
  for (int i = 0; i < width; ++i) s += i < fill ? '=' : (i == fill ? '>' : ' ');
  return s + "]";
}

// The learning rate the step was compiled with (its typed description;
// steps written before it was recorded carry metadata amp.lr).
StatusOr<double> DefaultLr(const Model& m) {
  if (m.training.optimizer.kind != OptimizerKind::kNone) return m.training.optimizer.default_lr;
  auto it = m.metadata.find("amp.lr");
  if (it == m.metadata.end())
    return InvalidArgument("the model records no learning rate; pass --lr");
  try {
    return std::stod(it->second);
  } catch (const std::exception&) {
    return InvalidArgument("metadata amp.lr '", it->second, "' is not a number; pass --lr");
  }
}

// Loss (mean cross-entropy) and accuracy of the forward graph over the data.
Status Evaluate(const Flags& f, const Executor& trained, const std::map<std::string, Tensor>& data,
                const std::string& label_input, int64_t batch) {
  ExecutorOptions so;
  so.device = f.device;
  so.mode = TrainingInfoMode::kForward;
  AMP_ASSIGN_OR_RETURN(auto fwd, Executor::Open(f.model, so));
  for (const std::string& name : trained.StateNames()) {
    auto t = trained.Fetch(name);
    if (t.ok() && fwd->Initializer(name).ok()) AMP_RETURN_IF_ERROR(fwd->SetInitializer(name, *t));
  }
  const Graph& g = *fwd->model().graph;
  if (g.outputs().empty()) return InvalidArgument("the forward graph has no output");
  std::string out_name = g.outputs()[0]->name();
  auto labels_it = data.find(label_input);
  int64_t samples = data.at(g.inputs()[0]->name()).dims()[0];
  double loss_sum = 0;
  int64_t correct = 0, counted = 0;
  for (int64_t first = 0; first < samples; first += batch) {
    std::vector<int64_t> rows;
    for (int64_t i = first; i < std::min(samples, first + batch); ++i) rows.push_back(i);
    for (const Value* in : g.inputs()) {
      auto it = data.find(in->name());
      if (it == data.end()) return InvalidArgument("--data has no array '", in->name(), "'");
      AMP_RETURN_IF_ERROR(fwd->SetInput(in->name(), Gather(it->second, rows)));
    }
    AMP_RETURN_IF_ERROR(fwd->Run());
    AMP_ASSIGN_OR_RETURN(Tensor logits, fwd->Fetch(out_name));
    if (labels_it == data.end() || logits.dims().size() != 2) continue;
    Tensor labels = Gather(labels_it->second, rows);
    int64_t c = logits.dims()[1];
    for (int64_t r = 0; r < logits.dims()[0]; ++r) {
      double peak = -INFINITY;
      int64_t arg = 0;
      for (int64_t k = 0; k < c; ++k)
        if (logits.GetDouble(r * c + k) > peak) {
          peak = logits.GetDouble(r * c + k);
          arg = k;
        }
      double s = 0;
      for (int64_t k = 0; k < c; ++k) s += std::exp(logits.GetDouble(r * c + k) - peak);
      int64_t y = labels.GetInt(r);
      if (y < 0 || y >= c) continue;
      loss_sum += std::log(s) + peak - logits.GetDouble(r * c + y);
      correct += arg == y;
      ++counted;
    }
  }
  if (counted == 0) {
    std::printf("eval: ran %lld samples (no labels to score)\n", static_cast<long long>(samples));
  } else {
    std::printf("eval: %lld samples, loss %.6f, accuracy %.4f\n", static_cast<long long>(counted),
                loss_sum / counted, static_cast<double>(correct) / counted);
  }
  return Status::Ok();
}

Status ExportInference(const Flags& f, const Executor& trained) {
  AMP_ASSIGN_OR_RETURN(Model m, LoadModel(f.model, TrainingInfoMode::kForward));
  AMP_RETURN_IF_ERROR(amp::ExportInference(trained, std::move(m), f.export_inference));
  std::fprintf(stderr, "amp-train: wrote the trained inference model to %s\n",
               f.export_inference.c_str());
  return Status::Ok();
}

Status Train(const Flags& f, Launcher launcher, std::unique_ptr<Communicator>& comm) {
  AMP_RETURN_IF_ERROR(ValidateFlags(f));
  // Under mpirun or with torchrun's variables, one process per rank: each
  // trains on its shard of every global batch, and the step's AllReduce
  // nodes average the gradients.
  AMP_ASSIGN_OR_RETURN(comm, JoinJob(launcher, f.collective_timeout, f.device));
  const int rank = comm ? comm->rank() : 0, ranks = comm ? comm->size() : 1;
  ExecutorOptions so;
  so.comm = comm.get();
  so.device = f.device;
  // A step without loss scaling (FP32) that computes a non-finite loss or
  // gradient stops training (or is skipped), instead of writing NaN state.
  so.non_finite = f.skip_nonfinite ? NonFinitePolicy::kSkip : NonFinitePolicy::kError;
  // auto: fused (one multi-tensor kernel instead of ~20 ops per parameter),
  // on both devices: on the CPU it is bit-identical to the graph as written
  // (tested) and halves the benchmark MLP's FP32 Adam step.
  so.fuse_optimizer = f.fuse_optimizer != "off";
  // Elementwise chains as one kernel each (bit-identical; tested).
  if (f.fuse_elementwise == "off") so.disabled_passes.insert("fuse-elementwise");
  so.profile = f.profile;
  AMP_ASSIGN_OR_RETURN(auto session, Executor::Open(f.model, so));
  if (!session->is_training())
    return InvalidArgument("'", f.model,
                           "' is not a training step; compile it with amp-compile --loss ... "
                           "--optimizer ...");
  const Model& m = session->model();
  if (ranks > 1 && !IsDataParallel(m))
    return InvalidArgument("amp-train runs as ", ranks, " ranks, but '", f.model,
                           "' was not compiled with --data-parallel: each rank would train alone");
  AMP_ASSIGN_OR_RETURN(auto data, ReadNpz(f.data));
  // The inputs: data arrays, and the learning rate (a scalar input).
  std::vector<const Value*> data_inputs;
  std::string lr_input, label_input;
  std::set<std::string> fwd_inputs;
  {
    auto fwd = LoadModel(f.model, TrainingInfoMode::kForward);
    if (fwd.ok())
      for (const Value* v : fwd->graph->inputs()) fwd_inputs.insert(v->name());
  }
  // The optimizer's description names its learning-rate input ("lr" in
  // steps that predate it).
  const std::string& described_lr = m.training.optimizer.lr;
  for (const Value* v : m.graph->inputs()) {
    if ((described_lr.empty() ? v->name() == "lr" : v->name() == described_lr) &&
        IsFloat(v->dtype())) {
      lr_input = v->name();
      continue;
    }
    auto it = data.find(v->name());
    if (it == data.end()) {
      std::string names;
      for (const auto& [k, t] : data) {
        if (!names.empty()) names.append(", ");
        names.append(k);
      }
      return InvalidArgument("--data '", f.data, "' has no array '", v->name(),
                             "' for the step's input of that name (it has: ", names, ")");
    }
    if (it->second.dims().empty())
      return InvalidArgument("array '", v->name(), "' is a scalar; its first axis must be samples");
    data_inputs.push_back(v);
    if (!fwd_inputs.count(v->name())) label_input = v->name();
  }
  if (data_inputs.empty()) return InvalidArgument("the step has no data inputs");
  int64_t samples = data.at(data_inputs[0]->name()).dims()[0];
  for (const Value* v : data_inputs)
    if (data.at(v->name()).dims()[0] != samples)
      return InvalidArgument("arrays in --data have different sample counts (",
                             data_inputs[0]->name(), ": ", samples, ", ", v->name(), ": ",
                             data.at(v->name()).dims()[0], ")");
  int64_t batch = f.batch_size;
  if (!f.has_batch_size) {
    const auto& shape = data_inputs[0]->type().shape;
    if (shape && !shape->empty() && (*shape)[0].is_static())
      batch = (*shape)[0].value();
    else
      return InvalidArgument("pass --batch-size (the model's batch dim is not fixed)");
  }
  if (batch * ranks > samples)
    return InvalidArgument("--batch-size ", batch,
                           (ranks > 1 ? StrCat(" x ", ranks, " ranks") : ""),
                           " is larger than the ", samples, " samples in --data");
  double lr = f.lr;
  if (!f.has_lr && !lr_input.empty()) {
    AMP_ASSIGN_OR_RETURN(lr, DefaultLr(m));
    if (!std::isfinite(lr) || lr < 0)
      return InvalidArgument("the step's recorded learning rate (amp.lr) is ", lr, "; pass --lr");
  }
  if (batch < 1) return InvalidArgument("the batch size is ", batch, "; pass --batch-size");
  // The global batch is batch x ranks samples (the same seeded order on every
  // rank); rank r takes its r-th slice.
  Batches batches(samples, batch * ranks, f.shuffle, f.seed);
  int64_t steps = f.has_steps ? f.steps : batches.per_epoch();
  if (!f.resume.empty()) {
    AMP_ASSIGN_OR_RETURN(auto meta, LoadCheckpoint(*session, f.resume));
    std::fprintf(stderr, "amp-train: resumed from %s at step %lld\n",
                 CheckpointPath(f.resume).c_str(), static_cast<long long>(session->step()));
    (void)meta;
  }
  if (comm && ranks > 1) AMP_RETURN_IF_ERROR(BroadcastState(*session, *comm));
  if (session->step() > kMaxStep - steps)
    return InvalidArgument("--steps ", steps, " from step ", session->step(),
                           " would pass step 2^53");
  // Rank 0 writes the log and the checkpoints and reports progress.
  std::FILE* log = nullptr;
  if (!f.log.empty() && rank == 0) {
    log = std::fopen(f.log.c_str(), f.resume.empty() ? "w" : "a");
    if (!log) return IoError("cannot write the log '", f.log, "'");
  }
  bool tty = !f.quiet && rank == 0 && isatty(fileno(stderr));
  int64_t skipped_total = 0;
  double last_loss = NAN, total_seconds = 0;
  int64_t first_step = session->step();
  auto t_start = std::chrono::steady_clock::now();
  Status status = Status::Ok();
  for (int64_t k = first_step; k < first_step + steps; ++k) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int64_t> all = batches.Rows(k);
    std::vector<int64_t> rows(all.begin() + rank * batch, all.begin() + (rank + 1) * batch);
    for (const Value* v : data_inputs) {
      status = session->SetInput(v->name(), Gather(data.at(v->name()), rows));
      if (!status.ok()) break;
    }
    if (!status.ok()) break;
    if (!lr_input.empty()) {
      Tensor t(m.graph->FindValue(lr_input)->dtype(), {});
      t.SetDouble(0, lr);
      AMP_RETURN_IF_ERROR(session->SetInput(lr_input, t));
    }
    AMP_ASSIGN_OR_RETURN(double scale, session->LossScale());  // the scale this step uses
    status = session->Run();
    if (!status.ok()) break;
    AMP_ASSIGN_OR_RETURN(last_loss, session->Loss());
    AMP_ASSIGN_OR_RETURN(bool skipped, session->StepSkipped());
    skipped_total += skipped;
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    total_seconds += seconds;
    if (log) {
      std::fprintf(log,
                   "{\"step\": %lld, \"loss\": %s, \"loss_scale\": %s, \"skipped\": %s, "
                   "\"lr\": %s, \"seconds\": %.6f}\n",
                   static_cast<long long>(k), JsonNumber(last_loss).c_str(),
                   JsonNumber(scale).c_str(), skipped ? "true" : "false", JsonNumber(lr).c_str(),
                   seconds);
      std::fflush(log);
    }
    int64_t done = k - first_step + 1;
    if (tty) {
      std::fprintf(stderr, "\r%s %lld/%lld  %.1f steps/s  loss %.4f  scale %g  skipped %lld ",
                   Bar(done, steps).c_str(), static_cast<long long>(done),
                   static_cast<long long>(steps), done / std::max(total_seconds, 1e-9), last_loss,
                   scale, static_cast<long long>(skipped_total));
    }
    bool save_now =
        rank == 0 && !f.checkpoint.empty() &&
        ((f.save_every > 0 && (k + 1) % f.save_every == 0) || k + 1 == first_step + steps);
    if (save_now) {
      nlohmann::json meta = {{"model", f.model}, {"data", f.data},       {"batch_size", batch},
                             {"lr", lr},         {"shuffle", f.shuffle}, {"seed", f.seed},
                             {"ranks", ranks}};
      AMP_RETURN_IF_ERROR(SaveCheckpoint(*session, f.checkpoint, meta));
    }
  }
  if (tty) std::fprintf(stderr, "\n");
  if (log) std::fclose(log);
  if (!status.ok()) return status.WithContext(StrCat("step ", session->step()));
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  if (rank != 0) return Status::Ok();
  const MemoryReport& mem = session->memory();
  if (steps > 0)
    std::fprintf(
        stderr,
        "amp-train: %lld steps on %s%s in %.2f s (%.1f steps/s), final loss %.6f, %lld "
        "skipped; %zu nodes; memory plan: arena %.2f MiB (%.2f MiB without reuse), state %.2f "
        "MiB\n",
        static_cast<long long>(steps), std::string(session->device()).c_str(),
        ranks > 1 ? StrCat(" x ", ranks, " ranks").c_str() : "", wall, steps / std::max(wall, 1e-9),
        last_loss, static_cast<long long>(skipped_total), mem.nodes, mem.arena_bytes / 1048576.0,
        mem.unshared_bytes / 1048576.0, mem.persistent_bytes / 1048576.0);
  if (f.profile) {
    // Where the time went: ops, then nodes, most first.
    double total = 0;
    for (const ProfileEntry& e : session->ProfileByOp()) total += e.seconds;
    std::fprintf(stderr, "amp-train: profile: %.3f s in kernels over %lld steps\n", total,
                 static_cast<long long>(steps));
    auto print = [&](const char* what, const std::vector<ProfileEntry>& v, size_t n) {
      std::fprintf(stderr, "  by %s:\n", what);
      for (size_t i = 0; i < v.size() && i < n; ++i)
        std::fprintf(stderr, "  %8.3f s %5.1f%% %6zu calls  %s\n", v[i].seconds,
                     100 * v[i].seconds / std::max(total, 1e-12), v[i].calls, v[i].key.c_str());
    };
    print("op", session->ProfileByOp(), 15);
    print("node", session->ProfileByNode(), 10);
  }
  if (f.eval) AMP_RETURN_IF_ERROR(Evaluate(f, *session, data, label_input, batch));
  if (!f.export_inference.empty()) AMP_RETURN_IF_ERROR(ExportInference(f, *session));
  return Status::Ok();
}

}  // namespace
}  // namespace amp

int main(int argc, char** argv) {
  amp::Flags f;
  CLI::App app{"amp-train: train a model compiled by amp-compile (a training step)", "amp-train"};
  app.set_version_flag("--version", amp::cli::kVersion);
  app.add_option("model", f.model, "the training step (.onnx from amp-compile)")->required();
  app.add_option("--data", f.data, "an .npz with one array per step input (first axis: samples)")
      ->required();
  auto* batch_size = app.add_option("--batch-size", f.batch_size,
                                    "samples per step (default: the model's batch dim)");
  auto* steps = app.add_option("--steps", f.steps, "steps to run (default: one epoch)");
  app.add_option("--device", f.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  auto* lr = app.add_option("--lr", f.lr, "learning rate (default: the one given to amp-compile)");
  app.add_option("--log", f.log,
                 "write one JSON line per step (step, loss, loss_scale, skipped, lr, seconds; a "
                 "non-finite loss is null)");
  app.add_option("--checkpoint", f.checkpoint, "folder for checkpoints (written atomically)");
  auto* save_every =
      app.add_option("--save-every", f.save_every, "checkpoint every S steps (and after the last)");
  app.add_option("--resume", f.resume, "continue from the checkpoint in this folder");
  app.add_flag("--shuffle", f.shuffle, "a seeded shuffle of the samples every epoch");
  app.add_option("--seed", f.seed, "seed of --shuffle");
  app.add_flag("--eval", f.eval,
               "after training, run the forward graph over --data: loss, accuracy");
  app.add_option("--export-inference", f.export_inference,
                 "write the trained weights into the forward (inference) model");
  app.add_flag("-q,--quiet", f.quiet, "no progress bar");
  app.add_flag("--skip-nonfinite", f.skip_nonfinite,
               "a step without loss scaling whose loss or gradients are not finite is skipped "
               "(state unchanged, counted as skipped) instead of stopping the run");
  app.add_option("--collective-timeout", f.collective_timeout,
                 "under mpirun or torchrun-style variables (RANK, WORLD_SIZE, MASTER_ADDR, "
                 "MASTER_PORT): seconds joining and each all-reduce may wait for the other ranks "
                 "before the run stops with an error (300)");
  app.add_option("--fuse-optimizer", f.fuse_optimizer,
                 "one multi-tensor Adam/AdamW/SGD kernel and one loss-scale update: on, off, "
                 "or auto (on; off runs them as the exported graph writes them, bit-identical "
                 "on the CPU)")
      ->check(CLI::IsMember({"on", "off", "auto"}));
  app.add_flag("--profile", f.profile,
               "time every kernel (synchronizing after each) and print where the steps' time "
               "went, per op and per node");
  app.add_option("--fuse-elementwise", f.fuse_elementwise,
                 "chains of elementwise ops as one kernel each: on (default) or off (one "
                 "kernel per op; the same values bit for bit)")
      ->check(CLI::IsMember({"on", "off"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }
  f.has_lr = lr->count() > 0;
  f.has_steps = steps->count() > 0;
  f.has_batch_size = batch_size->count() > 0;
  f.has_save_every = save_every->count() > 0;
  std::unique_ptr<amp::Communicator> comm;
  const amp::Launcher launcher = amp::DetectLauncher();
  int rc = amp::cli::RunMain("amp-train", [&] { return amp::Train(f, launcher, comm); });
#ifdef AMP_HAVE_MPI
  // A rank that fails takes the MPI job down: the others would wait for it.
  // (Over TCP its closed connections end the others' next collective.)
  if (rc != 0 && launcher == amp::Launcher::kMpi && comm && comm->size() > 1)
    MPI_Abort(MPI_COMM_WORLD, rc);
#endif
  return rc;
}
