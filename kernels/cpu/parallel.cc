#include "kernels/cpu/parallel.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace amp::cpu {
namespace {

class Pool {
 public:
  explicit Pool(int threads) {
    for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { Work(t); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& w : workers_) w.join();
  }
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs task(t) for t in [0, parts) (part 0 on the caller) and waits.
  void Run(int parts, const std::function<void(int)>& task) {
    std::unique_lock<std::mutex> run(run_mu_);  // one loop at a time
    {
      std::lock_guard<std::mutex> lock(mu_);
      task_ = &task;
      parts_ = parts;
      pending_ = parts - 1;
      ++generation_;
    }
    wake_.notify_all();
    task(0);
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return pending_ == 0; });
    task_ = nullptr;
  }

 private:
  void Work(int t) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* task = nullptr;
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (t >= parts_) continue;
        task = task_;
      }
      (*task)(t);
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* task_ = nullptr;
  int parts_ = 0, pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

int ThreadsFromEnvironment() {
  if (const char* s = std::getenv("OMP_NUM_THREADS")) {
    int n = std::atoi(s);
    if (n >= 1) return std::min(n, 64);
  }
  return std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 64);
}

Pool& ThePool() {
  static Pool pool(ThreadsFromEnvironment());
  return pool;
}

}  // namespace

int NumThreads() { return ThePool().size(); }

thread_local bool in_parallel = false;  // a loop inside a loop runs serially

void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  if (n <= 0) return;
  int64_t parts =
      in_parallel ? 1 : std::min<int64_t>(NumThreads(), n / std::max<int64_t>(grain, 1));
  if (parts <= 1) {
    f(0, n);
    return;
  }
  int64_t chunk = (n + parts - 1) / parts;
  ThePool().Run(static_cast<int>(parts), [&](int t) {
    bool outer = in_parallel;
    in_parallel = true;
    int64_t begin = t * chunk, end = std::min(n, begin + chunk);
    if (begin < end) f(begin, end);
    in_parallel = outer;
  });
}

}  // namespace amp::cpu
