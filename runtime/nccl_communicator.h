// The ranks of a data-parallel job on GPUs: NCCL moves the gradients between
// the devices (ai.amp AllReduce on the CUDA backend), after a host
// communicator (MPI's or the TCP one of torchrun-style jobs) has passed rank
// 0's NCCL id to every rank. Host collectives (the state broadcast at start)
// still go through that host communicator.
//
// NCCL is loaded when a job first needs it (dlopen of libnccl.so.2, or the
// path in AMP_NCCL_LIBRARY), so that amp's binaries start on machines
// without it and say what is missing only where it is needed. The
// communicator is non-blocking: creating it, queueing a collective and
// waiting for one are bounded by the timeout, after which it is aborted and
// the run fails with a message naming the rank.
#pragma once

#include <memory>
#include <string>

#include "compiler/status.h"
#include "kernels/communicator.h"

namespace amp {

// The NCCL library as amp would load it: its version (e.g. 22805), or why it
// cannot be loaded. Needs no GPU.
StatusOr<int> NcclVersion();

// Joins the ranks of `host` on GPU `device` (this rank's local rank).
StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(std::unique_ptr<Communicator> host,
                                                               int device, double timeout_seconds);

}  // namespace amp
