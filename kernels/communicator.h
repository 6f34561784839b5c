// The ranks of a data-parallel run, as the collective kernels see them
// (ai.amp AllReduce). The runtime gives a backend one: over MPI
// (runtime/mpi_communicator.h) or TCP (runtime/tcp_communicator.h) in host
// memory, or over NCCL (runtime/nccl_communicator.h) in device memory as well;
// without one a step runs as the only rank.
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

  // Device collectives (NCCL): the mean over the ranks of each buffer's
  // `count` floats, `in` to `out` (the same pointer: in place), queued on
  // `stream` (a cudaStream_t) as one group. A host-memory communicator has
  // none.
  struct DeviceBuffer {
    const void* in;
    void* out;
    size_t count;
  };
  virtual bool has_device_collectives() const { return false; }
  virtual Status DeviceAllReduceMean(const DeviceBuffer* buffers, size_t n, void* stream) {
    (void)buffers, (void)n, (void)stream;
    return Unimplemented("this communicator reduces host memory only");
  }
  // Waits until `stream` has drained, the collectives queued on it included;
  // a collective that does not complete within the timeout (a rank stopped)
  // is an error, and the communicator is aborted, instead of a hang.
  virtual Status DeviceWait(void* stream) {
    (void)stream;
    return Unimplemented("this communicator reduces host memory only");
  }
};

}  // namespace amp
