// Two serverd replicas on one real PostgreSQL, each with its CA key in its own SoftHSM2 token,
// and an agentd attached to each: the replicas publish both CAs, an entry created through one
// reaches a workload whose agent is attached to the other well within a second (PostgreSQL's
// notification wakes the parked sync), every SVID verifies with the bundle a workload is handed,
// a join token spent at one replica is refused at the other, and a ban made at one holds at the
// other. An agent given both replicas moves to the survivor when its replica is killed with -9,
// and keeps rotating and serving.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/trust_bundle.h"
#include "core/x509_svid.h"
#include "tests/support/agentd_process.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/process_usage.h"
#include "tests/support/serverd_process.h"
#include "tests/support/softhsm_suite.h"

namespace sigil::testing {
namespace {

struct Replica {
  std::string name;
  std::unique_ptr<ServerdProcess> server;
  std::unique_ptr<AgentdProcess> agent;
  std::string agent_id;
};

class ReplicasTest : public SoftHsmSuite<> {
 protected:
  void SetUp() override {
    auto postgres = SharedPostgres();
    ASSERT_TRUE(postgres.ok()) << postgres.status().ToString();
    auto connection = (*postgres)->CreateDatabase("replicas_" + std::to_string(::getpid()) + "_" +
                                                  std::to_string(++databases_));
    ASSERT_TRUE(connection.ok()) << connection.status().ToString();
    connection_ = *connection;
    WriteFile(work_.path() / "postgres-password", "not-asked-for-by-trust-auth\n");
  }

  void TearDown() override {
    for (Replica* replica : {&a_, &b_}) {
      if (replica->agent) replica->agent->Stop();
      if (replica->server) replica->server->Stop();
      for (const std::string& logs : {replica->agent ? replica->agent->logs() : "",
                                      replica->server ? replica->server->logs() : ""}) {
        EXPECT_EQ(logs.find("Sanitizer"), std::string::npos) << logs;
        if (HasFailure()) std::cerr << "replica " << replica->name << " logs:\n" << logs;
      }
    }
  }

  void StartServer(Replica& replica) {
    ServerdOptions options;
    options.top_level_yaml = "datastore:\n  kind: postgres\n  connection_string: \"" + connection_ +
                             "\"\n  password_file: " + (work_.path() / "postgres-password").string() +
                             "\n  max_connections: 4\n  replica_name: " + replica.name + "\n";
    auto server = ServerdProcess::Create(*hsm_, "replica-" + replica.name + "-" + std::to_string(++tokens_), options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    replica.server = std::move(*server);
    Status started = replica.server->Start();
    ASSERT_TRUE(started.ok()) << started.ToString() << replica.server->logs();
  }

  // agentd attached to `replica`, attested with `token` (made at either replica).
  void StartAgent(Replica& replica, const std::string& token) {
    const auto bundle_path = work_.path() / (replica.name + "-bundle.pem");
    WriteFile(bundle_path, replica.server->MustCli({"bundle", "show"}).out);
    auto agent = AgentdProcess::Create({.server_port = replica.server->agent_port(), .join_token = token,
                                        .trust_bundle_path = bundle_path});
    ASSERT_TRUE(agent.ok()) << agent.status().ToString();
    replica.agent = std::move(*agent);
    Status started = replica.agent->Start();
    ASSERT_TRUE(started.ok()) << started.ToString() << replica.agent->logs();
    replica.agent_id = "spiffe://example.org/spire/agent/join_token/" + token;
  }

  // The number of CA certificates `serverd bundle show` of `replica` prints.
  static size_t BundleSize(const Replica& replica) {
    auto certs = CertsFromPem(replica.server->MustCli({"bundle", "show"}).out);
    return certs.ok() ? certs->size() : 0;
  }

  // The workload's SVIDs and bundle from `replica`'s agent, written to a folder of their own,
  // once an SVID for `spiffe_id` is among them; the folder, or empty on timeout.
  std::filesystem::path FetchUntil(const Replica& replica, const std::string& spiffe_id,
                                   std::chrono::milliseconds timeout) {
    const auto dir = work_.path() / ("fetch-" + std::to_string(++fetches_));
    std::filesystem::create_directories(dir);
    const bool got = WaitUntil([&] {
      auto fetched = replica.agent->Cli({"api", "fetch", "x509", "-write", dir.string()});
      return fetched.ok() && fetched->exit_code == 0 && fetched->out.find(spiffe_id) != std::string::npos;
    }, timeout);
    return got ? dir : std::filesystem::path();
  }

  // Which of `cas` alone verifies the SVID in `pem`: its index, or -1.
  static int IssuingCa(const std::filesystem::path& pem, const std::vector<X509Ptr>& cas) {
    auto chain = CertsFromPem(ReadFile(pem));
    if (!chain.ok()) return -1;
    std::vector<X509*> raw;
    for (const auto& cert : *chain) raw.push_back(cert.get());
    for (size_t i = 0; i < cas.size(); ++i) {
      X509Bundle only(*TrustDomain::Parse("example.org"));
      only.Add(cas[i].get());
      if (VerifyX509Svid(raw, only).ok()) return static_cast<int>(i);
    }
    return -1;
  }

  void CreateEntry(const Replica& through, const std::string& spiffe_id, const std::string& parent_id,
                   const std::string& x509_ttl = "3600") {
    ProcessOutput created = through.server->MustCli({"entry", "create", "-spiffeID", spiffe_id, "-parentID", parent_id,
                                                     "-selector", "unix:uid:" + std::to_string(::getuid()),
                                                     "-x509SVIDTTL", x509_ttl});
    ASSERT_EQ(created.exit_code, 0) << created.err;
  }

  static inline int databases_ = 0;
  static inline int tokens_ = 0;
  int fetches_ = 0;
  TempDir work_{"sigil-replicas"};
  std::string connection_;
  Replica a_{"a"};
  Replica b_{"b"};
};

TEST_F(ReplicasTest, TwoReplicasShareEntriesTokensAndOneBundleOfBothCas) {
  StartServer(a_);
  StartServer(b_);
  // b read a's CA as it started; a hears of b's from the journal's notification.
  ASSERT_TRUE(WaitUntil([&] { return BundleSize(a_) == 2 && BundleSize(b_) == 2; }, std::chrono::seconds(5)))
      << "a: " << BundleSize(a_) << ", b: " << BundleSize(b_);
  EXPECT_EQ(a_.server->MustCli({"bundle", "show"}).out.size(), b_.server->MustCli({"bundle", "show"}).out.size());

  // Tokens are one store's: one made at a attests an agent at b; one made at b attests an agent
  // at a, and once spent there it is refused at b.
  StartAgent(b_, a_.server->NewJoinToken());
  const std::string token = b_.server->NewJoinToken();
  StartAgent(a_, token);
  auto reused = AgentdProcess::Create({.server_port = b_.server->agent_port(), .join_token = token,
                                       .trust_bundle_path = work_.path() / "b-bundle.pem"});
  ASSERT_TRUE(reused.ok());
  (void)(*reused)->StartUnsynced();
  EXPECT_TRUE((*reused)->WaitForExit(std::chrono::seconds(20)).has_value()) << "agentd with a spent token kept running";
  EXPECT_NE((*reused)->logs().find("join token"), std::string::npos) << (*reused)->logs();

  // Entries made through a reach the workload of b's agent: each within a second of its create
  // (the median; a sanitizer build's command-line runs alone take about that long).
  std::vector<double> seconds_to_workload;
  std::filesystem::path files;
  for (int i = 0; i < 5; ++i) {
    const std::string id = "spiffe://example.org/across/" + std::to_string(i);
    const auto created = std::chrono::steady_clock::now();
    CreateEntry(a_, id, b_.agent_id);
    files = FetchUntil(b_, id, std::chrono::seconds(10));
    ASSERT_FALSE(files.empty()) << id << " never reached the workload of b's agent";
    seconds_to_workload.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - created).count());
  }
  std::sort(seconds_to_workload.begin(), seconds_to_workload.end());
  EXPECT_LT(seconds_to_workload[seconds_to_workload.size() / 2], 1.0 * kSanitizerTimeFactor)
      << "median seconds from `entry create` at a to the SVID at b's workload";

  // The bundle b's workload holds has both replicas' CAs, and SVIDs signed by either verify with it.
  auto bundle_certs = CertsFromPem(ReadFile(files / "bundle.0.pem"));
  ASSERT_TRUE(bundle_certs.ok());
  EXPECT_EQ(bundle_certs->size(), 2u);
  X509Bundle bundle(*TrustDomain::Parse("example.org"));
  for (const auto& cert : *bundle_certs) bundle.Add(cert.get());
  CreateEntry(b_, "spiffe://example.org/signed-by-a", a_.agent_id);
  const auto from_a = FetchUntil(a_, "spiffe://example.org/signed-by-a", std::chrono::seconds(10));
  ASSERT_FALSE(from_a.empty());
  for (const auto& dir : {files, from_a}) {
    for (const auto& file : std::filesystem::directory_iterator(dir)) {
      const std::string name = file.path().filename().string();
      if (!name.starts_with("svid.") || !name.ends_with(".pem")) continue;
      auto chain = CertsFromPem(ReadFile(file.path()));
      ASSERT_TRUE(chain.ok());
      std::vector<X509*> raw;
      for (const auto& cert : *chain) raw.push_back(cert.get());
      auto verified = VerifyX509Svid(raw, bundle);
      EXPECT_TRUE(verified.ok()) << file.path() << ": " << verified.status().ToString();
    }
  }
  // The two agents' SVIDs came from two CAs: each replica signs with its own.
  EXPECT_NE(IssuingCa(from_a / "svid.0.pem", *bundle_certs), -1);
  EXPECT_NE(IssuingCa(files / "svid.0.pem", *bundle_certs), -1);
  EXPECT_NE(IssuingCa(from_a / "svid.0.pem", *bundle_certs), IssuingCa(files / "svid.0.pem", *bundle_certs));

  // A ban made through a holds at b at once: b refuses the agent's next SVID request.
  ProcessOutput banned = a_.server->MustCli({"agent", "ban", "-spiffeID", b_.agent_id});
  ASSERT_EQ(banned.exit_code, 0) << banned.err;
  CreateEntry(a_, "spiffe://example.org/after-the-ban", b_.agent_id);
  EXPECT_TRUE(WaitUntil([&] { return b_.agent->logs().find("is banned") != std::string::npos; },
                        std::chrono::seconds(10)))
      << b_.agent->logs();
  auto after_ban = b_.agent->Cli({"api", "fetch", "x509"});
  ASSERT_TRUE(after_ban.ok());
  EXPECT_EQ(after_ban->out.find("after-the-ban"), std::string::npos) << "b signed for a banned agent";
}

TEST_F(ReplicasTest, AnAgentMovesToTheOtherReplicaWhenItsOwnIsKilled) {
  StartServer(a_);
  StartServer(b_);
  ASSERT_TRUE(WaitUntil([&] { return BundleSize(a_) == 2 && BundleSize(b_) == 2; }, std::chrono::seconds(5)));
  const std::string token = a_.server->NewJoinToken();
  const auto bundle_path = work_.path() / "both-bundle.pem";
  WriteFile(bundle_path, a_.server->MustCli({"bundle", "show"}).out);
  auto agent = AgentdProcess::Create({.server_port = a_.server->agent_port(), .join_token = token,
                                      .trust_bundle_path = bundle_path});
  ASSERT_TRUE(agent.ok()) << agent.status().ToString();
  // Both replicas, a first: agentd's own list, as an operator writes it; a by a name agentd
  // resolves (localhost), b by address.
  std::string config = ReadFile((*agent)->config_path());
  const std::string one = "  server_address: 127.0.0.1\n";
  ASSERT_NE(config.find(one), std::string::npos);
  config.replace(config.find(one), one.size(),
                 "  server_address: [\"localhost:" + std::to_string(a_.server->agent_port()) + "\", \"127.0.0.1:" +
                     std::to_string(b_.server->agent_port()) + "\"]\n");
  WriteFile((*agent)->config_path(), config);
  b_.agent = std::move(*agent);  // attached to a for now; b's once a is gone
  ASSERT_TRUE(b_.agent->Start().ok()) << b_.agent->logs();
  b_.agent_id = "spiffe://example.org/spire/agent/join_token/" + token;
  // A short-lived SVID, so that rotation goes on across the kill.
  CreateEntry(a_, "spiffe://example.org/rotating", b_.agent_id, "8");
  const auto before = FetchUntil(b_, "spiffe://example.org/rotating", std::chrono::seconds(10));
  ASSERT_FALSE(before.empty());
  const std::string first_svid = ReadFile(before / "svid.0.pem");

  a_.server->Kill();
  // Entries made through b reach the agent, which now syncs with b.
  CreateEntry(b_, "spiffe://example.org/after-the-kill", b_.agent_id);
  const auto after = FetchUntil(b_, "spiffe://example.org/after-the-kill", std::chrono::seconds(20));
  ASSERT_FALSE(after.empty()) << "the agent did not move to the surviving replica";
  // The rotating SVID is renewed by b (the first one, from a, had 8 s), and verifies.
  std::filesystem::path renewed;
  ASSERT_TRUE(WaitUntil([&] {
    renewed = FetchUntil(b_, "spiffe://example.org/rotating", std::chrono::seconds(5));
    if (renewed.empty()) return false;
    for (const auto& file : std::filesystem::directory_iterator(renewed)) {
      const std::string name = file.path().filename().string();
      if (name.starts_with("svid.") && name.ends_with(".pem") && ReadFile(file.path()) == first_svid) return false;
    }
    return true;
  }, std::chrono::seconds(20))) << "the SVID signed by a was never replaced";
  auto cas = CertsFromPem(ReadFile(renewed / "bundle.0.pem"));
  ASSERT_TRUE(cas.ok());
  EXPECT_EQ(cas->size(), 2u);
  EXPECT_NE(IssuingCa(renewed / "svid.0.pem", *cas), -1);
  EXPECT_NE(b_.agent->logs().find("the next calls go to another replica"), std::string::npos);
}

}  // namespace
}  // namespace sigil::testing
