// data-parallel: makes a training step data-parallel. Every gradient and the
// loss pass through ai.amp AllReduce nodes (the mean over the ranks), so each
// rank computes its local batch and then holds the gradients of the global
// batch; loss scaling, its found-inf check and the optimizer that follow
// read the reduced values, so every rank skips the same steps, keeps the same
// loss scale and makes the same update (what PyTorch's DDP and GradScaler do).
//
// Gradients are bucketed in the order the backward pass produces them (a
// bucket closes once it holds bucket_bytes), so that a backend that runs
// collectives asynchronously can reduce one bucket while the backward pass
// computes the next. Runs after autodiff, before loss-scaling.
//
//   before:  w_grad = MatMul (...)          loss = ReduceMean (...)
//            w.next = Sub (w, Mul (lr, w_grad))
//   after:   w_grad_reduced, ... = ai.amp.AllReduce (w_grad, ...)
//            loss_reduced = ai.amp.AllReduce (loss)
//            w.next = Sub (w, Mul (lr, w_grad_reduced))
#pragma once

#include <cstddef>

#include "passes/pass.h"

namespace amp {

struct DataParallelOptions {
  size_t bucket_bytes = size_t{4} << 20;  // 4 MiB
};

class DataParallel : public Pass {
 public:
  static constexpr std::string_view kName = "data-parallel";
  explicit DataParallel(DataParallelOptions options = {}) : options_(options) {}
  std::string_view name() const override { return kName; }
  StatusOr<bool> Run(Model& model) override;

 private:
  DataParallelOptions options_;
};

}  // namespace amp
