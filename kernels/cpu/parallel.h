// The CPU kernels' threads: a small pool that splits a loop over [0, n) into
// contiguous chunks, one per thread, the caller taking the first. Kernels
// use it only where elements are independent (elementwise programs, the
// optimizer, rows of a softmax), so results do not depend on the thread
// count. The count is OMP_NUM_THREADS when set (what OpenBLAS and PyTorch
// read too), else the machine's cores, at most 64.
#pragma once

#include <cstdint>
#include <functional>

namespace amp::cpu {

int NumThreads();

// f(begin, end) over [0, n), in chunks of at least `grain` (a loop smaller
// than two grains runs on the caller alone). Returns when every chunk is done.
void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

}  // namespace amp::cpu
