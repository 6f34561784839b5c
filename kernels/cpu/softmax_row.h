// One row of Softmax or LogSoftmax, in place: the arithmetic the Softmax
// kernels (reduce.cc) and the fused attention kernels (attention.cc) share,
// so that a fused attention's probabilities are Softmax's bit for bit. The
// peak is subtracted for stability, each exp is computed once (in double)
// and the sum is accumulated in double; each result is rounded to float once.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace amp::cpu {

// at(k) is the k-th float of the row (a float&), for k < n; `scratch` holds n
// doubles. `logsumexp`, when given, gets the row's log of the sum of exps
// (the peak plus the log of the shifted sum).
template <typename At>
inline void SoftmaxRow(At&& at, int64_t n, double* scratch, bool log_softmax = false,
                       double* logsumexp = nullptr) {
  double peak = -std::numeric_limits<double>::infinity();
  for (int64_t k = 0; k < n; ++k)
    if (at(k) > peak) peak = at(k);
  double sum = 0;
  for (int64_t k = 0; k < n; ++k) sum += (scratch[k] = std::exp(at(k) - peak));
  if (logsumexp) *logsumexp = peak + std::log(sum);
  for (int64_t k = 0; k < n; ++k)
    at(k) = static_cast<float>(log_softmax ? (at(k) - peak) - std::log(sum) : scratch[k] / sum);
}

}  // namespace amp::cpu
