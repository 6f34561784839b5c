#include "runtime/process_group.h"

#include <cerrno>
#include <cstdlib>
#include <limits>

#include "runtime/executor.h"
#include "runtime/mpi_communicator.h"
#include "runtime/nccl_communicator.h"
#include "runtime/tcp_communicator.h"

namespace amp {
namespace {

const char* Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

// An integer variable, strictly: all digits, in range.
StatusOr<int> IntEnv(const char* name, int lo, int hi) {
  const char* v = Env(name);
  if (v == nullptr)
    return InvalidArgument(name,
                           " is not set (torchrun sets RANK, WORLD_SIZE, "
                           "MASTER_ADDR and MASTER_PORT on every process)");
  char* end = nullptr;
  errno = 0;
  long x = std::strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi)
    return InvalidArgument(name, "='", v, "' is not an integer in [", lo, ", ", hi, "]");
  return static_cast<int>(x);
}

// The port rank 0 listens on. torchrun's agent holds MASTER_PORT itself (its
// rendezvous store, which it tells the ranks with
// TORCHELASTIC_USE_AGENT_STORE), so under it amp takes the next one;
// AMP_MASTER_PORT overrides both.
StatusOr<int> TcpPort() {
  if (Env("AMP_MASTER_PORT") != nullptr) return IntEnv("AMP_MASTER_PORT", 1, 65535);
  const char* agent = Env("TORCHELASTIC_USE_AGENT_STORE");
  const bool taken =
      agent != nullptr && (std::string_view(agent) == "True" || std::string_view(agent) == "true" ||
                           std::string_view(agent) == "1");
  AMP_ASSIGN_OR_RETURN(int port, IntEnv("MASTER_PORT", 1, taken ? 65534 : 65535));
  return taken ? port + 1 : port;
}

}  // namespace

Launcher DetectLauncher() {
  if (LaunchedByMpi()) return Launcher::kMpi;
  if (Env("WORLD_SIZE") != nullptr || Env("RANK") != nullptr) return Launcher::kTorchrun;
  return Launcher::kNone;
}

const char* LauncherName(Launcher l) {
  switch (l) {
    case Launcher::kNone:
      return "none";
    case Launcher::kMpi:
      return "mpirun";
    case Launcher::kTorchrun:
      return "torchrun-style variables";
  }
  return "?";
}

namespace {

StatusOr<std::unique_ptr<Communicator>> JoinHost(Launcher launcher, double timeout_seconds) {
  switch (launcher) {
    case Launcher::kNone:
      return std::unique_ptr<Communicator>();
    case Launcher::kMpi:
      return CreateMpiCommunicator(timeout_seconds);
    case Launcher::kTorchrun: {
      TcpOptions o;
      AMP_ASSIGN_OR_RETURN(o.size, IntEnv("WORLD_SIZE", 1, 1 << 20));
      AMP_ASSIGN_OR_RETURN(o.rank, IntEnv("RANK", 0, o.size - 1));
      if (o.size > 1) {
        const char* addr = Env("MASTER_ADDR");
        if (addr == nullptr)
          return InvalidArgument("MASTER_ADDR is not set: the address rank 0 listens at");
        o.master_addr = addr;
        AMP_ASSIGN_OR_RETURN(o.master_port, TcpPort());
      }
      o.timeout_seconds = timeout_seconds;
      return CreateTcpCommunicator(o);
    }
  }
  return Internal("unknown launcher");
}

}  // namespace

StatusOr<std::unique_ptr<Communicator>> JoinJob(Launcher launcher, double timeout_seconds,
                                                std::string_view device) {
  if (device != "cpu" && device != "cuda")
    return InvalidArgument("device '", device, "' is not cpu or cuda");
  AMP_ASSIGN_OR_RETURN(auto host, JoinHost(launcher, timeout_seconds));
  if (!host || device == "cpu") return host;
  AMP_ASSIGN_OR_RETURN(int local, LocalRank(launcher));
  return CreateNcclCommunicator(std::move(host), local, timeout_seconds);
}

StatusOr<int> LocalRank(Launcher launcher) {
  const char* name = launcher == Launcher::kMpi        ? "OMPI_COMM_WORLD_LOCAL_RANK"
                     : launcher == Launcher::kTorchrun ? "LOCAL_RANK"
                                                       : nullptr;
  if (name == nullptr || Env(name) == nullptr) return 0;
  return IntEnv(name, 0, std::numeric_limits<int>::max());
}

bool IsDataParallel(const Model& step) {
  for (const Node* n : step.graph->nodes())
    if (n->domain() == "ai.amp" && n->op_type() == "AllReduce") return true;
  return false;
}

Status BroadcastState(Executor& session, Communicator& comm) {
  for (const std::string& name : session.StateNames()) {
    AMP_ASSIGN_OR_RETURN(Tensor t, session.Fetch(name));
    AMP_RETURN_IF_ERROR(comm.Broadcast(t.mutable_data(), t.nbytes(), 0));
    AMP_RETURN_IF_ERROR(session.SetInitializer(name, t));
  }
  int64_t step = session.step();
  AMP_RETURN_IF_ERROR(comm.Broadcast(&step, sizeof step, 0));
  session.set_step(step);
  return Status::Ok();
}

}  // namespace amp
