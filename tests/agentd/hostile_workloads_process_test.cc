// Local users attacking the Workload API socket itself rather than asking it for identities,
// against a real agentd (and serverd): holding every connection they can, half-sending request
// bodies on every stream, and asking for SVIDs they never read. Each attack is held while
// another uid's workload asks for its SVID; agentd's descriptors and peak memory are read from
// /proc and must stay within what workload_api_limits (transport/listener_limits.h) allows.
// The numbers in the comments were measured on agentd before those limits (commit e72463f).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/agentd/agent_server_fixture.h"
#include "tests/support/process_usage.h"
#include "tests/support/raw_http2.h"
#include "transport/http2_server.h"

namespace sigil::agentd::testing {
namespace {

using nlohmann::json;
using sigil::testing::Http2Frame;
using sigil::testing::Http2Frames;
using sigil::testing::kSanitizerMemoryFactor;
using sigil::testing::OpenDescriptors;
using sigil::testing::PeakResidentBytes;
using sigil::testing::RawClient;
using sigil::testing::WaitUntil;

constexpr uid_t kAttacker = 65534;   // nobody, in the connection flood
constexpr uid_t kBystander = 65533;  // another user's workload, while the test process attacks
constexpr size_t kMiB = 1 << 20;

// What agentd runs with when nobody set workload_api_limits:, as the attacks meet it.
const transport::Http2ServerOptions kLimits{};

// The most descriptors a process held, sampled every 20 ms from construction to destruction: the
// peak of an attack, not only the moments between a test's own calls.
class DescriptorWatch {
 public:
  explicit DescriptorWatch(pid_t pid)
      : sampler_([this, pid](std::stop_token stop) {
          while (!stop.stop_requested()) {
            most_ = std::max(most_.load(), OpenDescriptors(pid));
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
        }) {}
  size_t most() const { return most_; }

 private:
  std::atomic<size_t> most_{0};
  std::jthread sampler_;
};

// The client preface with `settings`, answered once the server's own SETTINGS arrived: only then
// do the server's stream limit and windows apply, and a request can count on them. The wait is
// patience, not a bound: in a TSan suite run, beside stream_resets_process's 100,000 calls, agentd
// once took over 10 s to answer an attacker's preface; alone it answers in under 50 ms.
void OpenSession(RawClient& client, const std::string& settings = "") {
  client.Send(std::string(sigil::testing::kHttp2Preface) +
              Http2Frame(sigil::testing::kFrameSettings, 0, 0, settings));
  ASSERT_TRUE(client.WaitForFrame(sigil::testing::kFrameSettings, 0,
                                  std::chrono::seconds(10) * sigil::testing::kSanitizerTimeFactor));
  client.Send(Http2Frame(sigil::testing::kFrameSettings, sigil::testing::kFlagAck, 0, ""));
}

// A PING answered: the server has read and acted on everything sent before it.
bool CaughtUp(RawClient& client, std::chrono::milliseconds timeout) {
  client.Send(Http2Frame(sigil::testing::kFramePing, 0, 0, std::string(8, '\x5a')));
  return client.WaitForFrame(sigil::testing::kFramePing, 0, timeout);
}

// The streams `client` saw reset with `error_code`.
std::set<uint32_t> ResetStreams(const RawClient& client, uint32_t error_code) {
  std::set<uint32_t> reset;
  for (const auto& frame : Http2Frames(client.received())) {
    if (frame.type == sigil::testing::kFrameRstStream && sigil::testing::Http2ErrorCode(frame) == error_code)
      reset.insert(frame.stream_id);
  }
  return reset;
}

class HostileWorkloadsTest : public AgentServerFixture {
 protected:
  void SetUp() override {
    AgentServerFixture::SetUp();
    ASSERT_NO_FATAL_FAILURE(StartServer());
  }

  // The first X509-SVID a workload of `uid` receives now, asked once; fails the test without one.
  void ExpectServed(std::optional<uid_t> uid, const char* during) {
    json answer;
    EXPECT_FALSE(LeafSerial(FirstSvid(uid, &answer)).empty())
        << "a workload of uid " << (uid ? *uid : ::getuid()) << " was not served " << during << ": "
        << answer.dump().substr(0, 500);
  }

  // `count` entries for `uid`, through one `entry create -data` file rather than a CLI run each.
  void CreateEntries(const std::string& prefix, uid_t uid, int count) {
    json entries = json::array();
    for (int i = 0; i < count; ++i) {
      entries.push_back(
          {{"spiffe_id", "spiffe://example.org" + prefix + std::to_string(i)},
           {"parent_id", agent_id_},
           {"selectors", {{{"type", "unix"}, {"value", "uid:" + std::to_string(uid)}}}}});
    }
    const auto path = work_.path() / "entries.json";
    sigil::testing::WriteFile(path, json{{"entries", entries}}.dump());
    auto created = Cli({"entry", "create", "-data", path.string()});
    ASSERT_EQ(created.exit_code, 0) << created.err;
  }
};

// Before: about 1,000 idle connections from one uid used up agentd's descriptors (systemd's
// default limit of 1024), after which agentd refused every workload with UNAVAILABLE, its own
// healthcheck included. Now a uid holds at most max_connections_per_source of them; the rest
// are closed as they arrive, and other uids are served as before.
TEST_F(HostileWorkloadsTest,
       AThousandIdleConnectionsFromOneUserLeaveOtherUsersServedAndTheHealthcheckPassing) {
  CreateEntry("/bystander", ::getuid());
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  // systemd's default open-file limit, hard as well as soft, so agentd cannot raise it.
  auto limited = sigil::testing::RunProcess(
      {"prlimit", "--pid", std::to_string(agent_->pid()), "--nofile=1024:1024"});
  ASSERT_TRUE(limited.ok() && limited->exit_code == 0)
      << (limited.ok() ? limited->err : limited.status().ToString());
  ASSERT_FALSE(WaitForSvidSerial().empty()) << "the workload never received its identity";
  const size_t descriptors_before = OpenDescriptors(agent_->pid());

  constexpr int kConnections = 1000;
  std::optional<DescriptorWatch> during_burst(agent_->pid());
  const std::string id = std::to_string(kAttacker);
  auto attacker = sigil::testing::ChildProcess::Start(
      {"setpriv", "--reuid", id, "--regid", id, "--clear-groups", "/usr/bin/python3",
       std::string(SIGIL_AGENTD_TEST_DIR) + "/idle_connections_attacker.py",
       agent_->socket_path().string(), std::to_string(kConnections)},
      work_.path());
  ASSERT_TRUE(attacker.ok()) << attacker.status().ToString();
  ASSERT_TRUE(WaitUntil([&] { return attacker->stdout_text().find('\n') != std::string::npos; },
                        std::chrono::seconds(40)))
      << attacker->stderr_text();
  const json report = json::parse(attacker->stdout_text(), nullptr, false);
  ASSERT_TRUE(report.is_object()) << attacker->stdout_text();
  const size_t burst_descriptors = during_burst->most();
  during_burst.reset();
  std::cerr << "attacker: " << report.dump() << "\n";
  EXPECT_EQ(report.value("connected", 0), kConnections) << report.dump();
  EXPECT_LE(report.value("held", 0), static_cast<int>(kLimits.max_connections_per_source))
      << report.dump();
  // Refused at once, not left in the listen backlog where they would hold the queue for everyone.
  EXPECT_EQ(report.value("silent", -1), 0) << report.dump();

  // A connection is a socket and the connecting process agentd holds (transport/peer_process.h);
  // the workloads and healthchecks of this test are a few more at a time. The bound holds
  // during the burst of connects too: a refused connection lets go of its process at once
  // (before, it held it until the accept loop ended, and agentd reached its limit).
  const size_t descriptor_bound = descriptors_before + 2 * kLimits.max_connections_per_source + 16;
  DescriptorWatch while_held(agent_->pid());
  for (int round = 0; round < 3; ++round) {
    ExpectServed(std::nullopt, "while another uid held its connections");
    auto health = agent_->Cli({"healthcheck"});
    ASSERT_TRUE(health.ok()) << health.status().ToString();
    EXPECT_EQ(health->exit_code, 0) << health->out << health->err;
  }
  const size_t most_descriptors = while_held.most();
  std::cerr << "agentd descriptors: " << descriptors_before << " before, " << burst_descriptors
            << " at the burst's peak, at most " << most_descriptors << " while held (bound "
            << descriptor_bound << ")\n";
  EXPECT_LE(most_descriptors, descriptor_bound);
  EXPECT_LE(burst_descriptors, descriptor_bound) << "agentd's descriptors ran out while it refused the burst";

  attacker->Stop();
  EXPECT_TRUE(WaitUntil([&] { return OpenDescriptors(agent_->pid()) <= descriptors_before + 16; }))
      << "agentd still holds " << OpenDescriptors(agent_->pid())
      << " descriptors after the attacker left";
}

// Before: one connection with 128 streams, each half-sending a 4 MiB body (no END_STREAM), grew
// agentd by hundreds of MiB, every body held whole until it ended. Now the bodies a connection
// holds at once are bounded by max_connection_request_bytes (16 MiB): the stream that would pass
// it is refused (REFUSED_STREAM) and what it held is freed.
TEST_F(HostileWorkloadsTest,
       HalfSentBodiesOnEveryStreamOfAConnectionLeaveAgentdWithinTheConnectionsRequestBytes) {
  CreateEntry("/bystander", kBystander);
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  ASSERT_FALSE(WaitForSvidSerial(kBystander).empty()) << "the workload never received its identity";
  const size_t peak_before = PeakResidentBytes(agent_->pid());

  RawClient attacker = RawClient::Unix(agent_->socket_path().string());
  ASSERT_NO_FATAL_FAILURE(OpenSession(attacker));
  constexpr uint32_t kStreams = 128;
  constexpr size_t kBodyBytes = 4 * kMiB;
  constexpr size_t kChunk = 16384;  // SETTINGS_MAX_FRAME_SIZE's default
  std::string requests;
  for (uint32_t i = 0; i < kStreams; ++i) requests += sigil::testing::Http2OpenRequest(2 * i + 1);
  attacker.Send(requests);
  // The bodies grow side by side, as an attacker would send them: one chunk per stream a round.
  std::string round;
  const std::string chunk(kChunk, 'b');
  for (uint32_t i = 0; i < kStreams; ++i)
    round += Http2Frame(sigil::testing::kFrameData, 0, 2 * i + 1, chunk);
  const auto started = std::chrono::steady_clock::now();
  for (size_t sent = 0; sent < kBodyBytes; sent += kChunk) {
    ASSERT_TRUE(attacker.TrySend(round, std::chrono::seconds(10)))
        << "agentd closed the connection or stopped reading";
  }
  ASSERT_TRUE(CaughtUp(attacker, std::chrono::seconds(20)))
      << "agentd never answered a PING after the bodies";
  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  ExpectServed(kBystander, "while the bodies were held");
  const size_t growth = PeakResidentBytes(agent_->pid()) - peak_before;
  const size_t refused = ResetStreams(attacker, 7 /* REFUSED_STREAM */).size();
  std::cerr << "sent " << kStreams * kBodyBytes / kMiB << " MiB in " << seconds
            << " s; agentd peak RSS " << peak_before / kMiB << " MiB before, grew " << growth / kMiB
            << " MiB; " << refused << " streams refused\n";
  // The bodies held, a string's spare capacity as each grew, and what malloc keeps.
  EXPECT_LT(growth, 3 * kLimits.max_connection_request_bytes * kSanitizerMemoryFactor)
      << "agentd peak RSS grew " << growth / kMiB << " MiB";
  // 128 bodies of 4 MiB do not fit in 16 MiB: all but a few streams were refused.
  EXPECT_GE(refused, kStreams - kLimits.max_connection_request_bytes / kBodyBytes);
}

// Before: 512 FetchX509SVID streams that never read their answers (receive window 0, no
// WINDOW_UPDATE ever) grew agentd to 293 MiB, every answer queued whole on every stream. Now a
// stream queues at most max_stream_unsent_bytes, a connection max_connection_unsent_bytes and
// all of one uid's connections max_source_unsent_bytes; a stream over any is reset
// (ENHANCE_YOUR_CALM) and what it queued is dropped. The answers
// are large (hundreds of SVIDs, so each stream builds its own) as in the measurement before.
TEST_F(HostileWorkloadsTest,
       StreamsThatNeverReadTheirSvidsLeaveAgentdWithinTheUidsUnsentBytes) {
  constexpr int kAttackerEntries = 400;
  ASSERT_NO_FATAL_FAILURE(CreateEntries("/attacker-", ::getuid(), kAttackerEntries));
  CreateEntry("/bystander", kBystander);
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  ASSERT_FALSE(WaitForSvidSerial(kBystander).empty()) << "the workload never received its identity";
  json attacker_answer;
  ASSERT_TRUE(WaitUntil(
      [&] {
        attacker_answer = Python({"x509", "1"});
        return attacker_answer.contains("messages") && !attacker_answer["messages"].empty() &&
               attacker_answer["messages"][0]["svids"].size() ==
                   static_cast<size_t>(kAttackerEntries);
      },
      std::chrono::seconds(30)))
      << "the agent never held every SVID of the attacker's uid: "
      << attacker_answer.dump().substr(0, 500);
  const size_t peak_before = PeakResidentBytes(agent_->pid());

  // 4 connections of max_concurrent_streams (128) streams each: the 512 of the measurement.
  constexpr int kConnections = 4;
  const std::string fetch =
      sigil::testing::Http2Headers({{":method", "POST"},
                                    {":scheme", "http"},
                                    {":path", "/SpiffeWorkloadAPI/FetchX509SVID"},
                                    {":authority", "localhost"},
                                    {"content-type", "application/grpc"},
                                    {"te", "trailers"},
                                    {"workload.spiffe.io", "true"}});
  const std::string empty_request("\0\0\0\0\0", 5);  // a gRPC frame of an empty X509SVIDRequest
  std::vector<RawClient> attackers;
  for (int c = 0; c < kConnections; ++c) {
    attackers.push_back(RawClient::Unix(agent_->socket_path().string()));
    ASSERT_NO_FATAL_FAILURE(
        OpenSession(attackers.back(),
                    sigil::testing::Http2Setting(sigil::testing::kSettingsInitialWindowSize, 0)));
    std::string requests;
    for (uint32_t i = 0; i < kLimits.max_concurrent_streams; ++i) {
      requests += Http2Frame(sigil::testing::kFrameHeaders, sigil::testing::kFlagEndHeaders,
                             2 * i + 1, fetch);
      requests += Http2Frame(sigil::testing::kFrameData, sigil::testing::kFlagEndStream, 2 * i + 1,
                             empty_request);
    }
    attackers.back().Send(requests);
  }
  // Every stream answered: its response HEADERS go out as its first message is queued (or
  // refused), and a stream reset before that sees only RST_STREAM.
  const auto answered = [](const RawClient& client) {
    std::set<uint32_t> streams;
    for (const auto& frame : Http2Frames(client.received())) {
      if (frame.type == sigil::testing::kFrameHeaders ||
          frame.type == sigil::testing::kFrameRstStream) {
        streams.insert(frame.stream_id);
      }
    }
    return streams.size();
  };
  const auto started = std::chrono::steady_clock::now();
  const bool all_answered = WaitUntil(
      [&] {
        bool all = true;
        for (auto& client : attackers) {
          client.ReadFor(std::chrono::milliseconds(5));
          all = all && answered(client) == kLimits.max_concurrent_streams;
        }
        return all;
      },
      std::chrono::seconds(30));
  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (auto& client : attackers) EXPECT_EQ(answered(client), kLimits.max_concurrent_streams);
  ASSERT_TRUE(all_answered) << "agentd did not answer every stream";

  ExpectServed(kBystander, "while 512 streams held their answers unread");
  const size_t growth = PeakResidentBytes(agent_->pid()) - peak_before;
  size_t reset = 0;
  for (const auto& client : attackers)
    reset += ResetStreams(client, sigil::testing::kErrorEnhanceYourCalm).size();
  std::cerr << "answer of " << kAttackerEntries << " SVIDs; 512 streams answered in " << seconds
            << " s; agentd peak RSS " << peak_before / kMiB << " MiB before, grew " << growth / kMiB
            << " MiB; " << reset << " streams reset\n";
  // What one uid's connections may queue together, and room for the answers being built as the
  // streams arrive. (Each connection bounded alone, the four grew agentd by 129 MiB.)
  EXPECT_LT(growth, (kLimits.max_source_unsent_bytes + 24 * kMiB) * kSanitizerMemoryFactor)
      << "agentd peak RSS grew " << growth / kMiB << " MiB";
  EXPECT_GT(reset, 0u)
      << "no stream was reset: the answers never filled a connection's unsent bytes";
}

}  // namespace
}  // namespace sigil::agentd::testing
