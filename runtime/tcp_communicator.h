// The ranks of a job started the way torchrun starts one: every process is
// given RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, and nothing else
// connects them. Rank 0 listens on MASTER_PORT and every other rank connects
// to it (a star over TCP, like the store torchrun's ranks rendezvous at).
//
// A collective goes through rank 0: it receives every rank's buffer in rank
// order, sums them in that order (so every run of a job sums alike) and sends
// the result back. That is the CPU's data-parallel path and the bootstrap of
// NCCL's (which moves the gradients itself); it is not meant for large
// multi-machine runs on the CPU, where mpirun's collectives scale better.
//
// Every send and receive is polled against the collective's deadline and a
// closed connection is an error at once, so a rank that died or stopped
// answering makes the others fail with a message instead of hanging.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "compiler/status.h"
#include "kernels/communicator.h"

namespace amp {

struct TcpOptions {
  int rank = 0;
  int size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // Seconds to wait for the ranks to connect, and for each collective.
  double timeout_seconds = 300;
};

// Connects the ranks: returns once all `size` of them have joined (or fails
// at the deadline, naming the ranks that did not).
StatusOr<std::unique_ptr<Communicator>> CreateTcpCommunicator(const TcpOptions& options);

}  // namespace amp
