#include "runtime/tcp_communicator.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace amp {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kMagic = 0x31504d41;  // "AMP1"
enum Op : uint32_t { kAllReduce = 1, kBroadcast = 2 };

// What a rank says when it connects, and what rank 0 answers once all have.
struct Hello {
  uint32_t magic;
  int32_t rank;
  int32_t size;
};
// Sent before every collective's payload, so that ranks that call different
// collectives (different steps) fail instead of exchanging the wrong bytes.
struct Header {
  uint32_t op;
  int32_t root;
  uint64_t count;
  bool operator==(const Header&) const = default;
};

std::string Describe(const Header& h) {
  if (h.op == kAllReduce) return StrCat("an all-reduce of ", h.count, " floats");
  if (h.op == kBroadcast) return StrCat("a broadcast of ", h.count, " bytes from rank ", h.root);
  return StrCat("an unknown collective (", h.op, ")");
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

Status SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    return IoError("fcntl: ", std::strerror(errno));
  return Status::Ok();
}

// Milliseconds left before `deadline` (at least 0), for poll().
int MsLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, 1000));
}

// Waits until `fd` is ready for `events`; false at the deadline.
StatusOr<bool> WaitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, MsLeft(deadline));
    if (rc < 0) {
      if (errno == EINTR) continue;
      return IoError("poll: ", std::strerror(errno));
    }
    if (rc > 0) return true;
    if (Clock::now() >= deadline) return false;
  }
}

class TcpCommunicator : public Communicator {
 public:
  TcpCommunicator(const TcpOptions& o, std::vector<Fd> peers)
      : rank_(o.rank), size_(o.size), timeout_(o.timeout_seconds), peers_(std::move(peers)) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Status AllReduceSum(float* data, size_t n) override {
    if (size_ == 1) return Status::Ok();
    const Header h{kAllReduce, 0, n};
    const Clock::time_point deadline = Deadline();
    if (rank_ != 0) {
      AMP_RETURN_IF_ERROR(Send(0, &h, sizeof h, deadline));
      AMP_RETURN_IF_ERROR(Send(0, data, n * sizeof(float), deadline));
      AMP_RETURN_IF_ERROR(ExpectHeader(0, h, deadline));
      return Recv(0, data, n * sizeof(float), deadline);
    }
    // Rank 0 adds the ranks' buffers in rank order, a chunk at a time.
    constexpr size_t kChunk = size_t{1} << 18;
    scratch_.resize(std::min(n, kChunk));
    for (int r = 1; r < size_; ++r) {
      AMP_RETURN_IF_ERROR(ExpectHeader(r, h, deadline));
      for (size_t at = 0; at < n; at += kChunk) {
        size_t len = std::min(kChunk, n - at);
        AMP_RETURN_IF_ERROR(Recv(r, scratch_.data(), len * sizeof(float), deadline));
        for (size_t e = 0; e < len; ++e) data[at + e] += scratch_[e];
      }
    }
    for (int r = 1; r < size_; ++r) {
      AMP_RETURN_IF_ERROR(Send(r, &h, sizeof h, deadline));
      AMP_RETURN_IF_ERROR(Send(r, data, n * sizeof(float), deadline));
    }
    return Status::Ok();
  }

  Status Broadcast(void* data, size_t bytes, int root) override {
    if (root < 0 || root >= size_)
      return InvalidArgument("broadcast from rank ", root, " of ", size_);
    if (size_ == 1) return Status::Ok();
    const Header h{kBroadcast, root, bytes};
    const Clock::time_point deadline = Deadline();
    if (rank_ != 0) {
      if (rank_ == root) {
        AMP_RETURN_IF_ERROR(Send(0, &h, sizeof h, deadline));
        return Send(0, data, bytes, deadline);
      }
      AMP_RETURN_IF_ERROR(ExpectHeader(0, h, deadline));
      return Recv(0, data, bytes, deadline);
    }
    if (root != 0) {
      AMP_RETURN_IF_ERROR(ExpectHeader(root, h, deadline));
      AMP_RETURN_IF_ERROR(Recv(root, data, bytes, deadline));
    }
    for (int r = 1; r < size_; ++r) {
      if (r == root) continue;
      AMP_RETURN_IF_ERROR(Send(r, &h, sizeof h, deadline));
      AMP_RETURN_IF_ERROR(Send(r, data, bytes, deadline));
    }
    return Status::Ok();
  }

 private:
  Clock::time_point Deadline() const {
    return Clock::now() +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_));
  }
  // The connection to `peer`: rank 0 holds one per rank, the others one to rank 0.
  int FdOf(int peer) const { return peers_[static_cast<size_t>(rank_ == 0 ? peer : 0)].get(); }

  Status TimedOut(int peer, const char* what) const {
    return IoError("rank ", rank_, " of ", size_, ": ", what, " rank ", peer,
                   " did not complete in ", timeout_, " s (did it stop?)");
  }

  Status Send(int peer, const void* data, size_t bytes, Clock::time_point deadline) {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
      ssize_t k = ::send(FdOf(peer), p, bytes, MSG_NOSIGNAL);
      if (k > 0) {
        p += k;
        bytes -= static_cast<size_t>(k);
        continue;
      }
      if (k < 0 && errno == EINTR) continue;
      if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return IoError("rank ", rank_, " of ", size_, ": the connection to rank ", peer,
                       " failed (", std::strerror(errno), "; did it stop?)");
      AMP_ASSIGN_OR_RETURN(bool ready, WaitFor(FdOf(peer), POLLOUT, deadline));
      if (!ready) return TimedOut(peer, "sending to");
    }
    return Status::Ok();
  }

  Status Recv(int peer, void* data, size_t bytes, Clock::time_point deadline) {
    char* p = static_cast<char*>(data);
    while (bytes > 0) {
      ssize_t k = ::recv(FdOf(peer), p, bytes, 0);
      if (k > 0) {
        p += k;
        bytes -= static_cast<size_t>(k);
        continue;
      }
      if (k == 0)
        return IoError("rank ", rank_, " of ", size_, ": rank ", peer,
                       " closed its connection in a collective (did it stop?)");
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        return IoError("rank ", rank_, " of ", size_, ": the connection to rank ", peer,
                       " failed (", std::strerror(errno), "; did it stop?)");
      AMP_ASSIGN_OR_RETURN(bool ready, WaitFor(FdOf(peer), POLLIN, deadline));
      if (!ready) return TimedOut(peer, "waiting for");
    }
    return Status::Ok();
  }

  Status ExpectHeader(int peer, const Header& want, Clock::time_point deadline) {
    Header got{};
    AMP_RETURN_IF_ERROR(Recv(peer, &got, sizeof got, deadline));
    if (!(got == want))
      return Internal("rank ", peer, " called ", Describe(got), " where rank ", rank_, " called ",
                      Describe(want), ": the ranks are not running the same step");
    return Status::Ok();
  }

  int rank_, size_;
  double timeout_;
  std::vector<Fd> peers_;
  std::vector<float> scratch_;
};

Status RecvHello(int fd, Hello& hello, Clock::time_point deadline) {
  char* p = reinterpret_cast<char*>(&hello);
  size_t left = sizeof hello;
  while (left > 0) {
    ssize_t k = ::recv(fd, p, left, 0);
    if (k > 0) {
      p += k;
      left -= static_cast<size_t>(k);
    } else if (k == 0) {
      return IoError("closed");
    } else if (errno != EINTR) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) return IoError(std::strerror(errno));
      AMP_ASSIGN_OR_RETURN(bool ready, WaitFor(fd, POLLIN, deadline));
      if (!ready) return IoError("no hello in time");
    }
  }
  return Status::Ok();
}

Status SendHello(int fd, const Hello& hello) {
  // 12 bytes on a fresh connection: the socket buffer takes them at once.
  ssize_t k = ::send(fd, &hello, sizeof hello, MSG_NOSIGNAL);
  if (k != static_cast<ssize_t>(sizeof hello)) return IoError("send: ", std::strerror(errno));
  return Status::Ok();
}

// Rank 0: accepts the other ranks on the port.
StatusOr<std::vector<Fd>> AcceptRanks(const TcpOptions& o, Clock::time_point deadline) {
  Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
  if (listener.get() < 0) return IoError("socket: ", std::strerror(errno));
  int one = 1;
  setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(o.master_port));
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return IoError("rank 0 cannot listen on port ", o.master_port,
                   " (MASTER_PORT): ", std::strerror(errno));
  if (::listen(listener.get(), o.size) != 0) return IoError("listen: ", std::strerror(errno));
  AMP_RETURN_IF_ERROR(SetNonBlocking(listener.get()));

  std::vector<Fd> peers(static_cast<size_t>(o.size));
  int joined = 1;
  while (joined < o.size) {
    AMP_ASSIGN_OR_RETURN(bool ready, WaitFor(listener.get(), POLLIN, deadline));
    if (!ready) {
      std::string missing;
      for (int r = 1; r < o.size; ++r)
        if (peers[static_cast<size_t>(r)].get() < 0)
          missing += StrCat(missing.empty() ? "" : ", ", r);
      const bool one = o.size - joined == 1;
      return IoError("rank 0 of ", o.size, ": rank", one ? " " : "s ", missing,
                     " did not connect to port ", o.master_port, " in ", o.timeout_seconds, " s");
    }
    Fd conn(::accept(listener.get(), nullptr, nullptr));
    if (conn.get() < 0) continue;  // the connection went away again
    AMP_RETURN_IF_ERROR(SetNonBlocking(conn.get()));
    Hello hello{};
    // A connection that is not an amp rank (no hello, a wrong one) is dropped.
    if (!RecvHello(conn.get(), hello, std::min(deadline, Clock::now() + std::chrono::seconds(10)))
             .ok() ||
        hello.magic != kMagic)
      continue;
    if (hello.size != o.size)
      return InvalidArgument("rank ", hello.rank, " was started with WORLD_SIZE=", hello.size,
                             " but rank 0 with WORLD_SIZE=", o.size);
    if (hello.rank <= 0 || hello.rank >= o.size)
      return InvalidArgument("a rank connected as rank ", hello.rank, " of ", o.size);
    if (peers[static_cast<size_t>(hello.rank)].get() >= 0)
      return InvalidArgument("two processes connected as rank ", hello.rank,
                             " (RANK must differ on every process)");
    int nodelay = 1;
    setsockopt(conn.get(), IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
    peers[static_cast<size_t>(hello.rank)] = std::move(conn);
    ++joined;
  }
  // Every rank has joined: let them go.
  const Hello go{kMagic, 0, o.size};
  for (int r = 1; r < o.size; ++r)
    AMP_RETURN_IF_ERROR(SendHello(peers[static_cast<size_t>(r)].get(), go));
  return peers;
}

// Rank r > 0: connects to rank 0, retrying until it listens.
StatusOr<std::vector<Fd>> ConnectToRankZero(const TcpOptions& o, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string port = std::to_string(o.master_port);
  if (int rc = ::getaddrinfo(o.master_addr.c_str(), port.c_str(), &hints, &found); rc != 0)
    return InvalidArgument("MASTER_ADDR '", o.master_addr, "': ", gai_strerror(rc));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(found, ::freeaddrinfo);
  std::string last = "no address";
  while (Clock::now() < deadline) {
    Fd s(::socket(AF_INET, SOCK_STREAM, 0));
    if (s.get() < 0) return IoError("socket: ", std::strerror(errno));
    AMP_RETURN_IF_ERROR(SetNonBlocking(s.get()));
    int rc = ::connect(s.get(), found->ai_addr, found->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      AMP_ASSIGN_OR_RETURN(bool ready, WaitFor(s.get(), POLLOUT, deadline));
      int err = ready ? 0 : ETIMEDOUT;
      socklen_t len = sizeof err;
      if (ready) getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc == 0) {
      int nodelay = 1;
      setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
      AMP_RETURN_IF_ERROR(SendHello(s.get(), Hello{kMagic, o.rank, o.size}));
      Hello go{};
      Status st = RecvHello(s.get(), go, deadline);
      if (!st.ok() || go.magic != kMagic || go.size != o.size)
        return IoError("rank ", o.rank, " of ", o.size, ": rank 0 at ", o.master_addr, ":",
                       o.master_port, " did not let it join (",
                       st.ok() ? "a wrong answer" : st.message(),
                       "; did every rank start, with the same WORLD_SIZE?)");
      std::vector<Fd> peers;
      peers.push_back(std::move(s));
      return peers;
    }
    last = std::strerror(errno);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return IoError("rank ", o.rank, " of ", o.size, " could not connect to rank 0 at ", o.master_addr,
                 ":", o.master_port, " in ", o.timeout_seconds, " s (", last, ")");
}

}  // namespace

StatusOr<std::unique_ptr<Communicator>> CreateTcpCommunicator(const TcpOptions& o) {
  if (o.size < 1) return InvalidArgument("WORLD_SIZE must be at least 1, not ", o.size);
  if (o.rank < 0 || o.rank >= o.size)
    return InvalidArgument("RANK ", o.rank, " is not in [0, WORLD_SIZE=", o.size, ")");
  if (o.master_port <= 0 || o.master_port > 65535)
    return InvalidArgument("MASTER_PORT ", o.master_port, " is not a port");
  if (!(o.timeout_seconds > 0)) return InvalidArgument("the collective timeout must be positive");
  const Clock::time_point deadline =
      Clock::now() +
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.timeout_seconds));
  std::vector<Fd> peers;
  if (o.size > 1) {
    if (o.rank == 0) {
      AMP_ASSIGN_OR_RETURN(peers, AcceptRanks(o, deadline));
    } else {
      AMP_ASSIGN_OR_RETURN(peers, ConnectToRankZero(o, deadline));
    }
  }
  return std::unique_ptr<Communicator>(new TcpCommunicator(o, std::move(peers)));
}

}  // namespace amp
