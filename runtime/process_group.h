// The job this process belongs to, from the launcher's environment: mpirun
// (Open MPI, or a PMI launcher such as srun) or torchrun's variables (RANK,
// WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK), which any launcher or
// script can set. amp-train and amp::Session join the job the same way.
#pragma once

#include <memory>
#include <string>

#include "compiler/ir.h"
#include "compiler/status.h"
#include "kernels/communicator.h"

namespace amp {

class Executor;

enum class Launcher { kNone, kMpi, kTorchrun };

// mpirun's variables win when both are set (mpirun run under torchrun's
// environment is still an MPI job).
Launcher DetectLauncher();
const char* LauncherName(Launcher l);

// The ranks of this process's job: MPI's under mpirun, a TCP star through
// rank 0 with torchrun's variables (runtime/tcp_communicator.h; rank 0
// listens on MASTER_PORT, or MASTER_PORT + 1 under torchrun itself, whose
// agent holds MASTER_PORT, or on AMP_MASTER_PORT when set); null when
// the process was started alone. For `device` "cuda", NCCL over the GPU of
// this rank's local rank, bootstrapped through that host communicator
// (runtime/nccl_communicator.h), for a job of one rank too (a smoke test of
// the path). `timeout_seconds` bounds joining and every collective.
StatusOr<std::unique_ptr<Communicator>> JoinJob(Launcher launcher, double timeout_seconds,
                                                std::string_view device = "cpu");

// This rank's index among the ranks on its machine (LOCAL_RANK, or Open
// MPI's OMPI_COMM_WORLD_LOCAL_RANK): the GPU it uses. 0 when alone.
StatusOr<int> LocalRank(Launcher launcher);

// Whether a step reduces its gradients over the ranks (amp-compile
// --data-parallel wrote ai.amp AllReduce nodes into it).
bool IsDataParallel(const Model& step);

// Every piece of state and the step count as rank 0 holds them, on every
// rank: the ranks start (and resume) from the same parameters, moments and
// loss scale.
Status BroadcastState(Executor& session, Communicator& comm);

}  // namespace amp
