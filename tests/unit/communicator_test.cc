// The TCP communicator of torchrun-style jobs (runtime/tcp_communicator.h),
// its ranks as threads of this process on loopback: the all-reduce against a
// sum in double over random data, broadcasts from every root, and the
// failures that must be errors, not hangs (a rank that never joins, never
// calls, leaves, or calls another collective); and the environment's
// variables as runtime/process_group.h reads them.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "runtime/process_group.h"
#include "runtime/tcp_communicator.h"

namespace amp {
namespace {

// A port nothing listens on now (the kernel's choice for a socket bound to 0).
int FreePort() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

TcpOptions Rank(int rank, int size, int port, double timeout = 20) {
  TcpOptions o;
  o.rank = rank;
  o.size = size;
  o.master_addr = "127.0.0.1";
  o.master_port = port;
  o.timeout_seconds = timeout;
  return o;
}

// Runs `body(rank, comm)` on `size` threads, one communicator each.
void RunRanks(int size, int port, const std::function<void(int, Communicator&)>& body,
              double timeout = 20) {
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r)
    threads.emplace_back([&, r] {
      auto comm = CreateTcpCommunicator(Rank(r, size, port, timeout));
      ASSERT_TRUE(comm.ok()) << comm.status().message();
      EXPECT_EQ((*comm)->rank(), r);
      EXPECT_EQ((*comm)->size(), size);
      body(r, **comm);
    });
  for (auto& t : threads) t.join();
}

TEST(TcpCommunicatorTest, AllReduceSumsEveryRanksBuffer) {
  constexpr int kRanks = 3;
  // Longer than one of rank 0's receive chunks (2^18 floats).
  constexpr size_t kN = (size_t{1} << 18) + 1001;
  std::vector<std::vector<float>> data(kRanks, std::vector<float>(kN));
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (auto& d : data)
    for (float& x : d) x = normal(rng);
  std::vector<double> want(kN, 0.0);
  for (const auto& d : data)
    for (size_t i = 0; i < kN; ++i) want[i] += d[i];
  std::vector<std::vector<float>> got = data;
  RunRanks(kRanks, FreePort(), [&](int r, Communicator& c) {
    ASSERT_TRUE(c.AllReduceSum(got[static_cast<size_t>(r)].data(), kN).ok());
    // A second, small one on the same connections.
    float one = static_cast<float>(r + 1);
    ASSERT_TRUE(c.AllReduceSum(&one, 1).ok());
    EXPECT_EQ(one, 6.0f);
  });
  for (int r = 0; r < kRanks; ++r) {
    const auto& g = got[static_cast<size_t>(r)];
    for (size_t i = 0; i < kN; ++i) {
      // Three float additions: within 2 ulps of the sum's magnitude terms.
      double tol =
          2 * 1.2e-7 * (std::abs(data[0][i]) + std::abs(data[1][i]) + std::abs(data[2][i]));
      ASSERT_NEAR(g[i], want[i], tol) << "rank " << r << " element " << i;
    }
    // Every rank holds the same bits (rank 0 sums once, in rank order).
    EXPECT_EQ(std::memcmp(g.data(), got[0].data(), kN * sizeof(float)), 0) << r;
  }
}

TEST(TcpCommunicatorTest, BroadcastFromEveryRoot) {
  constexpr int kRanks = 3;
  RunRanks(kRanks, FreePort(), [&](int r, Communicator& c) {
    for (int root = 0; root < kRanks; ++root) {
      std::vector<int64_t> v(1000, -1);  // poisoned on the receivers
      if (r == root)
        for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int64_t>(i) * 31 + root;
      ASSERT_TRUE(c.Broadcast(v.data(), v.size() * sizeof(int64_t), root).ok());
      for (size_t i = 0; i < v.size(); ++i)
        ASSERT_EQ(v[i], static_cast<int64_t>(i) * 31 + root) << "rank " << r << " root " << root;
    }
    int64_t x = 0;
    Status bad = c.Broadcast(&x, sizeof x, kRanks);
    EXPECT_FALSE(bad.ok());
    EXPECT_NE(bad.message().find("broadcast from rank 3 of 3"), std::string::npos) << bad.message();
  });
}

TEST(TcpCommunicatorTest, OneRankNeedsNoNetwork) {
  auto c = CreateTcpCommunicator(Rank(0, 1, 1));
  ASSERT_TRUE(c.ok()) << c.status().message();
  float x = 3.5f;
  ASSERT_TRUE((*c)->AllReduceSum(&x, 1).ok());
  EXPECT_EQ(x, 3.5f);
}

TEST(TcpCommunicatorTest, ARankThatNeverJoinsIsAnErrorNamingIt) {
  auto start = std::chrono::steady_clock::now();
  auto c = CreateTcpCommunicator(Rank(0, 3, FreePort(), 0.5));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("ranks 1, 2 did not connect"), std::string::npos)
      << c.status().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  auto lone = CreateTcpCommunicator(Rank(1, 2, FreePort(), 0.5));
  ASSERT_FALSE(lone.ok());
  EXPECT_NE(lone.status().message().find("could not connect to rank 0"), std::string::npos)
      << lone.status().message();
}

TEST(TcpCommunicatorTest, ARankThatStopsCallingTimesOut) {
  RunRanks(
      2, FreePort(),
      [&](int r, Communicator& c) {
        if (r == 1) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1500));
          return;  // rank 1 never calls; its connection closes after rank 0 timed out
        }
        float x = 1;
        auto start = std::chrono::steady_clock::now();
        Status s = c.AllReduceSum(&x, 1);
        ASSERT_FALSE(s.ok());
        EXPECT_NE(s.message().find("did not complete in 0.5 s"), std::string::npos) << s.message();
        EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
      },
      0.5);
}

TEST(TcpCommunicatorTest, ARankThatLeavesIsAnErrorAtOnce) {
  // Leaving means the communicator goes away: rank 1's, destroyed while
  // rank 0 waits in an all-reduce with a long deadline.
  const int port = FreePort();
  std::thread leaver([&] {
    auto c = CreateTcpCommunicator(Rank(1, 2, port));
    ASSERT_TRUE(c.ok()) << c.status().message();
  });
  auto c = CreateTcpCommunicator(Rank(0, 2, port));
  ASSERT_TRUE(c.ok()) << c.status().message();
  leaver.join();
  float x = 1;
  auto start = std::chrono::steady_clock::now();
  Status s = (*c)->AllReduceSum(&x, 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("rank 1 closed its connection"), std::string::npos) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(TcpCommunicatorTest, DifferentCollectivesAreAnError) {
  RunRanks(2, FreePort(), [&](int r, Communicator& c) {
    float x[4] = {1, 2, 3, 4};
    Status s = r == 0 ? c.AllReduceSum(x, 4) : c.AllReduceSum(x, 3);
    if (r == 0) {
      ASSERT_FALSE(s.ok());
      EXPECT_NE(s.message().find("rank 1 called an all-reduce of 3 floats where rank 0 called "
                                 "an all-reduce of 4 floats"),
                std::string::npos)
          << s.message();
    }
    // Rank 1 then waits for an answer that does not come: rank 0's
    // communicator is gone when its thread ends.
  });
}

TEST(TcpCommunicatorTest, RefusesImpossibleRanks) {
  EXPECT_FALSE(CreateTcpCommunicator(Rank(2, 2, 1234)).ok());
  EXPECT_FALSE(CreateTcpCommunicator(Rank(0, 0, 1234)).ok());
  EXPECT_FALSE(CreateTcpCommunicator(Rank(0, 2, 70000)).ok());
  EXPECT_FALSE(CreateTcpCommunicator(Rank(0, 2, 1234, 0)).ok());
  // Two sizes in one job: rank 0's message names both.
  const int port = FreePort();
  std::thread other([&] { (void)CreateTcpCommunicator(Rank(1, 3, port, 2)); });
  auto c = CreateTcpCommunicator(Rank(0, 2, port, 5));
  other.join();
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("WORLD_SIZE=3 but rank 0 with WORLD_SIZE=2"),
            std::string::npos)
      << c.status().message();
}

// The torchrun-style variables, set in this process for one test.
class EnvTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const char* v : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK",
                          "TORCHELASTIC_USE_AGENT_STORE", "AMP_MASTER_PORT"})
      ::unsetenv(v);
  }
  Status Join(const char* rank, const char* size, const char* addr, const char* port) {
    auto set = [](const char* name, const char* v) {
      if (v)
        ::setenv(name, v, 1);
      else
        ::unsetenv(name);
    };
    set("RANK", rank);
    set("WORLD_SIZE", size);
    set("MASTER_ADDR", addr);
    set("MASTER_PORT", port);
    return JoinJob(DetectLauncher(), 0.5).status();
  }
};

TEST_F(EnvTest, ReadsTorchrunsVariablesStrictly) {
  if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK"))
    GTEST_SKIP() << "run under an MPI launcher";
  EXPECT_EQ(DetectLauncher(), Launcher::kNone);
  auto alone = JoinJob(Launcher::kNone, 1);
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(*alone, nullptr);

  EXPECT_TRUE(Join("0", "1", nullptr, nullptr).ok());  // one rank: no address needed
  EXPECT_EQ(DetectLauncher(), Launcher::kTorchrun);
  struct Case {
    const char *rank, *size, *addr, *port, *message;
  };
  for (const Case& c : {
           Case{"1x", "2", "127.0.0.1", "29500", "RANK='1x' is not an integer in [0, 1]"},
           Case{"2", "2", "127.0.0.1", "29500", "RANK='2' is not an integer in [0, 1]"},
           Case{"0", "-1", "127.0.0.1", "29500", "WORLD_SIZE='-1' is not an integer"},
           Case{nullptr, "2", "127.0.0.1", "29500", "RANK is not set"},
           Case{"0", "2", nullptr, "29500", "MASTER_ADDR is not set"},
           Case{"0", "2", "127.0.0.1", nullptr, "MASTER_PORT is not set"},
           Case{"0", "2", "127.0.0.1", "0", "MASTER_PORT='0' is not an integer in [1, 65535]"},
       }) {
    Status s = Join(c.rank, c.size, c.addr, c.port);
    ASSERT_FALSE(s.ok()) << c.message;
    EXPECT_NE(s.message().find(c.message), std::string::npos) << s.message();
  }
  // The port rank 1 looks for rank 0 at (nothing listens there: it says so).
  auto port_of = [&](const char* agent, const char* amp_port) {
    if (agent) ::setenv("TORCHELASTIC_USE_AGENT_STORE", agent, 1);
    if (amp_port) ::setenv("AMP_MASTER_PORT", amp_port, 1);
    std::string m = Join("1", "2", "127.0.0.1", "1").message();
    ::unsetenv("TORCHELASTIC_USE_AGENT_STORE");
    ::unsetenv("AMP_MASTER_PORT");
    return m;
  };
  EXPECT_NE(port_of(nullptr, nullptr).find("rank 0 at 127.0.0.1:1 "), std::string::npos);
  // Under torchrun its agent's store holds MASTER_PORT: amp takes the next.
  EXPECT_NE(port_of("True", nullptr).find("rank 0 at 127.0.0.1:2 "), std::string::npos)
      << port_of("True", nullptr);
  EXPECT_NE(port_of("True", "7").find("rank 0 at 127.0.0.1:7 "), std::string::npos);
  EXPECT_NE(port_of(nullptr, "x").find("AMP_MASTER_PORT='x'"), std::string::npos);
  ::setenv("LOCAL_RANK", "3", 1);
  auto local = LocalRank(Launcher::kTorchrun);
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(*local, 3);
  ::setenv("LOCAL_RANK", "three", 1);
  EXPECT_FALSE(LocalRank(Launcher::kTorchrun).ok());
}

}  // namespace
}  // namespace amp
