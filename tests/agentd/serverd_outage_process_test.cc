// agentd while serverd is gone, with real processes: its retries back off instead of spinning
// (counted where serverd listened, by a socket that takes every connection and closes it), and
// an agent restarted during the outage serves the workload SVIDs it kept in data_dir, until
// serverd answers and a removed entry's SVID goes.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "tests/agentd/agent_server_fixture.h"

namespace sigil::agentd::testing {
namespace {

namespace fs = std::filesystem;
using sigil::testing::ServerdOptions;
using sigil::testing::WaitUntil;

constexpr uid_t kNobody = 65534;

// Listens on serverd's port in its place and counts the connections agentd makes: every try of
// every loop opens one, since each is closed at once.
class ConnectionCounter {
 public:
  explicit ConnectionCounter(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int on = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    listening_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && ::listen(fd_, 64) == 0;
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd ready{fd_, POLLIN, 0};
        if (::poll(&ready, 1, 50) <= 0) continue;
        const int connection = ::accept(fd_, nullptr, nullptr);
        if (connection < 0) continue;
        ++count_;
        ::close(connection);
      }
    });
  }
  ~ConnectionCounter() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  bool listening() const { return listening_; }
  size_t count() const { return count_; }

 private:
  int fd_ = -1;
  bool listening_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> count_{0};
  std::thread thread_;
};

size_t PemFilesIn(const fs::path& dir) {
  size_t count = 0;
  std::error_code error;
  for (const auto& file : fs::directory_iterator(dir, error)) count += file.path().extension() == ".pem";
  return count;
}

class ServerdOutageTest : public AgentServerFixture {};

// The agent SVID lives 6 s: its renewal falls due 3 s into the outage and fails from then on,
// beside entry sync. With the default back-off (from 1 s, doubling, jittered, up to 60 s) the
// two loops make a handful of tries between 8 and 23 s into the outage, and log each failure
// once a minute at most.
TEST_F(ServerdOutageTest, WithServerdGoneEveryLoopRetriesAtItsBackOffInsteadOfSpinning) {
  ServerdOptions options;
  options.extra_yaml = "  agent_ttl: 6s\n";
  StartServer(options);
  StartAgent();
  const int port = server_->agent_port();
  server_->Stop();
  ConnectionCounter counter(port);
  ASSERT_TRUE(counter.listening());
  // Past the renewal's due time and the first steps of the back-off.
  std::this_thread::sleep_for(std::chrono::seconds(8));
  const size_t lines_before = LinesWith(agent_->logs(), "agent SVID renewal failed");
  const size_t connections_before = counter.count();
  constexpr auto kWindow = std::chrono::seconds(15);
  std::this_thread::sleep_for(kWindow);
  const size_t connections = counter.count() - connections_before;
  const size_t lines = LinesWith(agent_->logs(), "agent SVID renewal failed") - lines_before;
  std::cout << "connections to serverd's port from 8 to 23 s into the outage: " << connections
            << "; renewal failure log lines: " << lines << "\n";
  RecordProperty("connections_8_to_23_s", static_cast<int>(connections));
  EXPECT_GE(connections, 1u) << "the agent stopped trying";
  // Waits of at least 4 s by then: renewal 2 tries at most, entry sync 1 (see above).
  EXPECT_LE(connections, 6u) << "the agent retries faster than its back-off";
  EXPECT_LE(lines, 1u) << "a repeated failure is logged more than once a minute";
  EXPECT_NE(agent_->logs().find("failures="), std::string::npos);
}

TEST_F(ServerdOutageTest, RestartedDuringAnOutageTheAgentServesTheSvidsItKeptUntilServerdAnswers) {
  StartServer();
  CreateEntry("/web", ::getuid());
  const std::string removed_entry = CreateEntry("/removed", kNobody);
  StartAgent();
  const std::string web_serial = WaitForSvidSerial();
  const std::string removed_serial = WaitForSvidSerial(kNobody);
  ASSERT_FALSE(web_serial.empty());
  ASSERT_FALSE(removed_serial.empty());
  // Kept on disk as they arrive, each key owner-only: a kill -9 loses none of them.
  const fs::path kept = agent_->data_dir() / "svids";
  EXPECT_TRUE(WaitUntil([&] { return PemFilesIn(kept) == 2; }, std::chrono::seconds(10)));
  std::error_code error;
  for (const auto& file : fs::directory_iterator(kept, error)) {
    EXPECT_EQ(static_cast<unsigned>(file.status().permissions() & fs::perms::all), 0600u) << file.path();
  }
  agent_->Kill();
  // Removed while the agent is down: it cannot know until serverd answers.
  ASSERT_EQ(Cli({"entry", "delete", "-entryID", removed_entry}).exit_code, 0);
  server_->Stop();

  Status started = agent_->StartUnsynced();
  ASSERT_TRUE(started.ok()) << started.ToString();
  nlohmann::json answer;
  EXPECT_EQ(LeafSerial(FirstSvid(std::nullopt, &answer)), web_serial) << answer.dump();
  EXPECT_EQ(LeafSerial(FirstSvid(kNobody, &answer)), removed_serial) << answer.dump();
  auto fetched = agent_->Cli({"api", "fetch", "x509"});
  ASSERT_TRUE(fetched.ok());
  EXPECT_EQ(fetched->exit_code, 0) << fetched->err;

  // serverd answers: the removed entry's SVID is served no more, and its file goes.
  ASSERT_TRUE(server_->Start().ok()) << server_->logs();
  ASSERT_TRUE(WaitUntil(
      [&] {
        FirstSvid(kNobody, &answer);
        return answer.value("code", "") == "PERMISSION_DENIED";
      },
      std::chrono::seconds(20)))
      << answer.dump();
  EXPECT_EQ(LeafSerial(FirstSvid()), web_serial) << "a restored SVID still valid was signed again";
  EXPECT_TRUE(WaitUntil([&] { return PemFilesIn(kept) == 1; }, std::chrono::seconds(10)));
}

TEST_F(ServerdOutageTest, AnSvidThatExpiresDuringAnOutageIsNoLongerServed) {
  StartServer();
  auto created = Cli({"entry", "create", "-spiffeID", "spiffe://example.org/brief", "-parentID", agent_id_,
                      "-selector", "unix:uid:" + std::to_string(::getuid()), "-x509SVIDTTL", "12"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  StartAgent();
  ASSERT_FALSE(WaitForSvidSerial().empty());
  server_->Stop();

  // Served while valid, then nothing: the stock client waits for an SVID until its deadline
  // rather than receiving one no peer would accept.
  nlohmann::json answer;
  EXPECT_TRUE(WaitUntil(
      [&] {
        FirstSvid(std::nullopt, &answer);
        return answer.value("code", "") == "DEADLINE_EXCEEDED";
      },
      std::chrono::seconds(40)))
      << answer.dump();
  EXPECT_TRUE(answer.value("messages", nlohmann::json::array()).empty()) << answer.dump();
  EXPECT_NE(agent_->logs().find("no longer served"), std::string::npos);
}

}  // namespace
}  // namespace sigil::agentd::testing
