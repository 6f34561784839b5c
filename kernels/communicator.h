// The ranks of a data-parallel run, as the collective kernels see them
// (ai.amp AllReduce). The runtime gives a backend one (runtime/mpi_communicator.h
// over MPI); without one a step runs as the only rank.
#pragma once

#include <cstddef>

#include "compiler/status.h"

namespace amp {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Sums `n` floats over every rank, in place, in host memory; a rank that
  // does not take part within the timeout makes it an error, never a hang.
  virtual Status AllReduceSum(float* data, size_t n) = 0;
  // `bytes` of host memory from rank `root` to every rank.
  virtual Status Broadcast(void* data, size_t bytes, int root) = 0;
};

}  // namespace amp
