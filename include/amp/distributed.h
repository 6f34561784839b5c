// amp::ProcessGroup: the ranks of a data-parallel job, for a step compiled
// with --data-parallel (CompileOptions::data_parallel). Start one process
// per rank with mpirun, or with torchrun's variables (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT; LOCAL_RANK picks the GPU) as torchrun or any
// script sets them:
//
//   auto pg = amp::ProcessGroup::FromEnvironment();       // StatusOr
//   amp::SessionOptions o;  o.process_group = *pg;
//   auto s = amp::Session::Create(*step, o);    // state broadcast from rank 0
//   // each rank binds its own slice of every global batch, then Run():
//   // the gradients are averaged over the ranks, so every rank makes the
//   // same update and skips the same overflowing steps.
//
// Every collective (joining included) fails with an error after
// `timeout_seconds` instead of hanging when a rank stops. One group per
// process.
#pragma once

#include <memory>
#include <string>

#include "amp/export.h"
#include "amp/status.h"

namespace amp {

class AMP_API ProcessGroup {
 public:
  // The job this process was started in; alone (no launcher's variables),
  // rank 0 of 1. For sessions on `device` "cuda", the gradients move over
  // NCCL between the GPUs (each rank on the GPU of its local rank); "cpu":
  // over MPI or TCP in host memory.
  static StatusOr<std::shared_ptr<ProcessGroup>> FromEnvironment(double timeout_seconds = 300,
                                                                 const std::string& device = "cpu");
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int size() const;
  // This rank's index on its machine (the GPU it uses).
  int local_rank() const;
  // "mpirun", "torchrun-style variables" or "none".
  std::string launcher() const;
  // The device whose sessions it serves: "cpu" or "cuda".
  std::string device() const;

  // The mean over the ranks of `n` floats, in place (a metric, say).
  Status AllReduceMean(float* data, size_t n);

  struct Impl;

 private:
  friend class Session;
  explicit ProcessGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace amp
