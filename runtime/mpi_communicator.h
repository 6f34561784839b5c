// The ranks of an MPI job (mpirun -np N): a Communicator over
// MPI_COMM_WORLD. Every collective is non-blocking underneath and polled
// against a deadline, so a rank that died or stopped answering makes the
// others fail with a message instead of hanging.
#pragma once

#include <memory>

#include "compiler/status.h"
#include "kernels/communicator.h"

namespace amp {

// Whether this build has MPI, and whether this process was started by an MPI
// launcher (Open MPI's mpirun, or a PMI launcher such as srun).
bool MpiBuilt();
bool LaunchedByMpi();

// Initializes MPI (once per process; finalized when the communicator goes).
StatusOr<std::unique_ptr<Communicator>> CreateMpiCommunicator(double timeout_seconds);

}  // namespace amp
