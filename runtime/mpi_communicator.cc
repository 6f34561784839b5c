#include "runtime/mpi_communicator.h"

#include <chrono>
#include <cstdlib>
#include <thread>

#ifdef AMP_HAVE_MPI
#include <mpi.h>
#endif

namespace amp {

bool LaunchedByMpi() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMI_SIZE") != nullptr ||
         std::getenv("PMIX_RANK") != nullptr;
}

#ifdef AMP_HAVE_MPI
namespace {

std::string MpiError(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, static_cast<size_t>(len));
}

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(double timeout) : timeout_(timeout) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Status AllReduceSum(float* data, size_t n) override {
    if (n > static_cast<size_t>(INT32_MAX))
      return InvalidArgument("all-reduce of over 2^31 floats");
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM,
                            MPI_COMM_WORLD, &req);
    if (rc != MPI_SUCCESS) return Internal("MPI all-reduce failed: ", MpiError(rc));
    return Wait(req, "all-reduce");
  }

  Status Broadcast(void* data, size_t bytes, int root) override {
    if (bytes > static_cast<size_t>(INT32_MAX)) return InvalidArgument("broadcast of over 2 GiB");
    MPI_Request req;
    int rc = MPI_Ibcast(data, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD, &req);
    if (rc != MPI_SUCCESS) return Internal("MPI broadcast failed: ", MpiError(rc));
    return Wait(req, "broadcast");
  }

 private:
  Status Wait(MPI_Request& req, const char* what) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_);
    for (int spins = 0;; ++spins) {
      int done = 0;
      int rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) return IoError("MPI ", what, " failed: ", MpiError(rc));
      if (done) return Status::Ok();
      if (std::chrono::steady_clock::now() > deadline)
        return IoError("rank ", rank_, " of ", size_, ": an MPI ", what, " did not complete in ",
                       timeout_, " s (did another rank stop?)");
      if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  double timeout_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

bool MpiBuilt() { return true; }

StatusOr<std::unique_ptr<Communicator>> CreateMpiCommunicator(double timeout_seconds) {
  if (!(timeout_seconds > 0)) return InvalidArgument("the collective timeout must be positive");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return Internal("MPI is already initialized in this process");
  int provided = 0;
  int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  if (rc != MPI_SUCCESS) return IoError("MPI_Init failed: ", MpiError(rc));
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return std::unique_ptr<Communicator>(new MpiCommunicator(timeout_seconds));
}

#else

bool MpiBuilt() { return false; }

StatusOr<std::unique_ptr<Communicator>> CreateMpiCommunicator(double) {
  return Unimplemented("this build of amp has no MPI (install libopenmpi-dev and rebuild)");
}

#endif

}  // namespace amp
