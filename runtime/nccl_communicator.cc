#include "runtime/nccl_communicator.h"

#ifdef AMP_HAVE_NCCL
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>
#endif

namespace amp {

#ifdef AMP_HAVE_NCCL
namespace {

using Clock = std::chrono::steady_clock;

// The entry points amp calls, resolved from the library once.
struct Nccl {
  decltype(&ncclGetVersion) GetVersion = nullptr;
  decltype(&ncclGetUniqueId) GetUniqueId = nullptr;
  decltype(&ncclCommInitRankConfig) CommInitRankConfig = nullptr;
  decltype(&ncclCommGetAsyncError) CommGetAsyncError = nullptr;
  decltype(&ncclCommAbort) CommAbort = nullptr;
  decltype(&ncclCommDestroy) CommDestroy = nullptr;
  decltype(&ncclAllReduce) AllReduce = nullptr;
  decltype(&ncclGroupStart) GroupStart = nullptr;
  decltype(&ncclGroupEnd) GroupEnd = nullptr;
  decltype(&ncclGetErrorString) GetErrorString = nullptr;
  decltype(&ncclGetLastError) GetLastError = nullptr;
};

StatusOr<const Nccl*> LoadNccl() {
  static const StatusOr<Nccl> loaded = []() -> StatusOr<Nccl> {
    std::string tried;
    void* lib = nullptr;
    std::vector<std::string> paths;
    if (const char* p = std::getenv("AMP_NCCL_LIBRARY"); p && *p) paths.push_back(p);
    paths.push_back("libnccl.so.2");
#ifdef AMP_NCCL_FALLBACK
    paths.push_back(AMP_NCCL_FALLBACK);  // the CUDA toolkit's, found at build time
#endif
    for (const std::string& p : paths) {
      lib = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (lib) break;
      const char* why = dlerror();
      tried += StrCat(tried.empty() ? "" : "; ", why ? why : p);
    }
    if (!lib)
      return Unimplemented("NCCL cannot be loaded (", tried,
                           "): install NCCL 2 or set AMP_NCCL_LIBRARY to its libnccl.so.2");
    Nccl n;
    Status missing = Status::Ok();
    auto get = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (!fn && missing.ok()) missing = Unimplemented("the NCCL library has no ", name);
    };
    get(n.GetVersion, "ncclGetVersion");
    get(n.GetUniqueId, "ncclGetUniqueId");
    get(n.CommInitRankConfig, "ncclCommInitRankConfig");
    get(n.CommGetAsyncError, "ncclCommGetAsyncError");
    get(n.CommAbort, "ncclCommAbort");
    get(n.CommDestroy, "ncclCommDestroy");
    get(n.AllReduce, "ncclAllReduce");
    get(n.GroupStart, "ncclGroupStart");
    get(n.GroupEnd, "ncclGroupEnd");
    get(n.GetErrorString, "ncclGetErrorString");
    get(n.GetLastError, "ncclGetLastError");
    if (!missing.ok()) return missing;  // the handle stays open: it is process-wide
    return n;
  }();
  if (!loaded.ok()) return loaded.status();
  return &*loaded;
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const Nccl& nccl, std::unique_ptr<Communicator> host, double timeout)
      : nccl_(nccl), host_(std::move(host)), timeout_(timeout) {}
  // An aborted communicator has freed its resources already.
  ~NcclCommunicator() override {
    if (comm_ != nullptr && !aborted_) nccl_.CommDestroy(comm_);
  }

  Status Init(int device) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)
      return Unimplemented("rank ", rank(), ": no usable GPU for NCCL; use --device cpu");
    if (device >= count)
      return InvalidArgument("rank ", rank(), " is local rank ", device, " but this machine has ",
                             count, " GPUs (one rank per GPU)");
    if (cudaError_t e = cudaSetDevice(device); e != cudaSuccess)
      return Internal("cudaSetDevice(", device, "): ", cudaGetErrorString(e));
    ncclUniqueId id{};
    if (rank() == 0) AMP_RETURN_IF_ERROR(Check(nccl_.GetUniqueId(&id), "ncclGetUniqueId"));
    AMP_RETURN_IF_ERROR(host_->Broadcast(&id, sizeof id, 0));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // every call returns; its completion is polled
    const Clock::time_point deadline = Deadline();
    ncclResult_t r = nccl_.CommInitRankConfig(&comm_, size(), id, rank(), &config);
    if (r != ncclSuccess && r != ncclInProgress) {
      comm_ = nullptr;
      return Check(r, "ncclCommInitRankConfig");
    }
    return Poll(deadline, "joining the NCCL communicator");
  }

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  Status AllReduceSum(float* data, size_t n) override { return host_->AllReduceSum(data, n); }
  Status Broadcast(void* data, size_t bytes, int root) override {
    return host_->Broadcast(data, bytes, root);
  }

  bool has_device_collectives() const override { return true; }

  Status DeviceAllReduceMean(const DeviceBuffer* buffers, size_t n, void* stream) override {
    if (aborted_) return Aborted();
    const Clock::time_point deadline = Deadline();
    AMP_RETURN_IF_ERROR(Check(nccl_.GroupStart(), "ncclGroupStart"));
    Status queued = Status::Ok();
    for (size_t k = 0; k < n && queued.ok(); ++k) {
      ncclResult_t r = nccl_.AllReduce(buffers[k].in, buffers[k].out, buffers[k].count, ncclFloat32,
                                       ncclAvg, comm_, static_cast<cudaStream_t>(stream));
      if (r != ncclSuccess && r != ncclInProgress) queued = Check(r, "ncclAllReduce");
    }
    ncclResult_t r = nccl_.GroupEnd();
    AMP_RETURN_IF_ERROR(queued);
    if (r != ncclSuccess && r != ncclInProgress) return Check(r, "ncclGroupEnd");
    return Poll(deadline, "queueing an all-reduce");
  }

  Status DeviceWait(void* stream) override {
    if (aborted_) return Aborted();
    const Clock::time_point deadline = Deadline();
    for (int spins = 0;; ++spins) {
      cudaError_t e = cudaStreamQuery(static_cast<cudaStream_t>(stream));
      if (e == cudaSuccess) return Status::Ok();
      if (e != cudaErrorNotReady)
        return Internal("the step failed on the GPU: ", cudaGetErrorString(e));
      ncclResult_t async = ncclSuccess;
      nccl_.CommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) {
        Status s = Check(async, "an all-reduce");
        Abort();
        return s;
      }
      if (Clock::now() > deadline) {
        Abort();
        return IoError("rank ", rank(), " of ", size(), ": an NCCL all-reduce did not complete in ",
                       timeout_, " s (did another rank stop?); the communicator was aborted");
      }
      if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

 private:
  Clock::time_point Deadline() const {
    return Clock::now() +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_));
  }
  Status Check(ncclResult_t r, const char* what) const {
    if (r == ncclSuccess) return Status::Ok();
    const char* last = comm_ ? nccl_.GetLastError(comm_) : nullptr;
    return IoError("rank ", rank(), " of ", size(), ": ", what,
                   " failed: ", nccl_.GetErrorString(r),
                   last && *last ? StrCat(" (", last, ")") : std::string());
  }
  // Waits for the communicator's pending call (non-blocking mode).
  Status Poll(Clock::time_point deadline, const char* what) {
    for (int spins = 0;; ++spins) {
      ncclResult_t async = ncclInProgress;
      if (ncclResult_t r = nccl_.CommGetAsyncError(comm_, &async); r != ncclSuccess)
        return Check(r, what);
      if (async == ncclSuccess) return Status::Ok();
      if (async != ncclInProgress) {
        Status s = Check(async, what);
        Abort();
        return s;
      }
      if (Clock::now() > deadline) {
        Abort();
        return IoError("rank ", rank(), " of ", size(), ": ", what, " did not complete in ",
                       timeout_, " s (did another rank stop?)");
      }
      if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  void Abort() {
    if (comm_ && !aborted_) nccl_.CommAbort(comm_);
    aborted_ = true;
  }
  Status Aborted() const {
    return IoError("rank ", rank(), " of ", size(), ": the NCCL communicator was aborted");
  }

  const Nccl& nccl_;
  std::unique_ptr<Communicator> host_;
  double timeout_;
  ncclComm_t comm_ = nullptr;
  bool aborted_ = false;
};

}  // namespace

StatusOr<int> NcclVersion() {
  AMP_ASSIGN_OR_RETURN(const Nccl* nccl, LoadNccl());
  int v = 0;
  if (nccl->GetVersion(&v) != ncclSuccess) return Internal("ncclGetVersion failed");
  return v;
}

StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(std::unique_ptr<Communicator> host,
                                                               int device, double timeout_seconds) {
  if (!host) return InvalidArgument("NCCL needs a host communicator to start from");
  if (!(timeout_seconds > 0)) return InvalidArgument("the collective timeout must be positive");
  if (device < 0) return InvalidArgument("local rank ", device, " is negative");
  AMP_ASSIGN_OR_RETURN(const Nccl* nccl, LoadNccl());
  auto c = std::make_unique<NcclCommunicator>(*nccl, std::move(host), timeout_seconds);
  AMP_RETURN_IF_ERROR(c->Init(device));
  return std::unique_ptr<Communicator>(std::move(c));
}

#else

StatusOr<int> NcclVersion() {
  return Unimplemented("this build of amp has no NCCL (it needs the CUDA toolkit's nccl.h)");
}

StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(std::unique_ptr<Communicator>, int,
                                                               double) {
  return Unimplemented(
      "this build of amp has no NCCL (it needs the CUDA toolkit's nccl.h); data-parallel "
      "training runs on --device cpu");
}

#endif

}  // namespace amp
