// Two trust domains federated both ways through their bundle endpoints, each a real serverd
// with its own agentd: a workload of each gets the other domain's bundle through the Workload
// API (`agentd api fetch x509 -write`), the two complete mutual TLS with those files (OpenSSL's
// s_server and s_client), an SVID of a third, unfederated domain is refused, and a CA rotation
// in one domain reaches the other domain's workload without a restart. Over https_spiffe (the
// first bundle set by hand) and over https_web (a certificate from files, no bundle by hand).
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/trust_bundle.h"
#include "tests/support/agentd_process.h"
#include "tests/support/process.h"
#include "tests/support/serverd_process.h"
#include "tests/support/softhsm_suite.h"

namespace sigil::testing {
namespace {

struct Domain {
  std::string name;
  int endpoint_port = 0;
  std::unique_ptr<ServerdProcess> server;
  std::unique_ptr<AgentdProcess> agent;
};

class TwoDomainsTest : public SoftHsmSuite<::testing::TestWithParam<std::string>> {
 protected:
  void TearDown() override {
    for (Domain* domain : {&home_, &partner_, &third_}) {
      if (domain->agent) domain->agent->Stop();
      if (domain->server) domain->server->Stop();
      for (const std::string& logs : {domain->agent ? domain->agent->logs() : "", domain->server ? domain->server->logs() : ""}) {
        EXPECT_EQ(logs.find("Sanitizer"), std::string::npos) << logs;
        if (HasFailure()) std::cerr << domain->name << " logs:\n" << logs;
      }
    }
  }

  bool Web() const { return GetParam() == "https_web"; }

  // serverd of `domain`, with a bundle endpoint and federating with `other`; `options` as given.
  void StartServer(Domain& domain, const Domain& other, ServerdOptions options) {
    options.trust_domain = domain.name;
    const std::string web_files = "{https_web: {serving_cert_file: {cert_file_path: " + cert_ + ", key_file_path: " + key_ + "}}}";
    options.top_level_yaml =
        "federation:\n  bundle_endpoint:\n    address: 127.0.0.1\n    port: " + std::to_string(domain.endpoint_port) +
        "\n    refresh_hint: 1s\n    profile: " + (Web() ? web_files : "https_spiffe") +
        "\n  federates_with:\n    " + other.name + ":\n      bundle_endpoint_url: https://127.0.0.1:" +
        std::to_string(other.endpoint_port) + "\n      bundle_endpoint_profile: " +
        (Web() ? "https_web" : "{https_spiffe: {endpoint_spiffe_id: \"spiffe://" + other.name + "/spire/server\"}}") + "\n";
    if (Web()) options.env["SSL_CERT_FILE"] = cert_;
    auto server = ServerdProcess::Create(*hsm_, "two-domains-" + std::to_string(++tokens_), options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    domain.server = std::move(*server);
    Status started = domain.server->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
  }

  // The domain's own bundle, in SPIFFE format.
  std::string OwnBundle(Domain& domain) {
    ProcessOutput shown = domain.server->MustCli({"bundle", "show", "-format", "spiffe"});
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    return shown.out;
  }

  // agentd of `domain`, attested with a join token, and an entry for this process's uid that
  // federates with `other` (whose bundle the server must hold by then).
  void StartAgentAndEntry(Domain& domain, const Domain& other) {
    const std::string token = domain.server->NewJoinToken();
    const auto bundle_path = work_.path() / (domain.name + "-bundle.pem");
    ProcessOutput pem = domain.server->MustCli({"bundle", "show"});
    WriteFile(bundle_path, pem.out);
    AgentdOptions options{.trust_domain = domain.name, .server_port = domain.server->agent_port(), .join_token = token,
                          .trust_bundle_path = bundle_path};
    auto agent = AgentdProcess::Create(options);
    ASSERT_TRUE(agent.ok()) << agent.status().ToString();
    domain.agent = std::move(*agent);
    Status started = domain.agent->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    ProcessOutput entry = domain.server->MustCli(
        {"entry", "create", "-spiffeID", "spiffe://" + domain.name + "/workload", "-parentID",
         "spiffe://" + domain.name + "/spire/agent/join_token/" + token, "-selector", "unix:uid:" + std::to_string(::getuid()),
         "-federatesWith", "spiffe://" + other.name});
    ASSERT_EQ(entry.exit_code, 0) << entry.err;
  }

  // Writes the workload's SVID files for `domain` into a folder of their own; the folder.
  std::filesystem::path FetchFiles(Domain& domain) {
    const auto dir = work_.path() / (domain.name + "-files-" + std::to_string(++fetches_));
    std::filesystem::create_directories(dir);
    WaitUntil([&] {
      auto fetched = domain.agent->Cli({"api", "fetch", "x509", "-write", dir.string()});
      return fetched.ok() && fetched->exit_code == 0 && std::filesystem::exists(dir / "federated_bundle.0.0.pem");
    }, std::chrono::seconds(20));
    return dir;
  }

  static size_t Certificates(const std::filesystem::path& pem) {
    if (!std::filesystem::exists(pem)) return 0;
    auto certs = CertsFromPem(ReadFile(pem));
    return certs.ok() ? certs->size() : 0;
  }

  // An OpenSSL TLS server with `files`' SVID, asking for a client certificate chaining to the
  // federated bundle, and a client with `client_cert`/`client_key` checking the server against
  // `client_roots`. True when the handshake completed on both ends.
  bool MutualTls(const std::filesystem::path& files, const std::string& client_cert, const std::string& client_key,
                 const std::string& client_roots) {
    const int port = FreeLoopbackPort();
    auto server = ChildProcess::Start(
        {"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert", (files / "svid.0.pem").string(),
         "-key", (files / "svid.0.key").string(), "-CAfile", (files / "federated_bundle.0.0.pem").string(), "-Verify", "1",
         "-verify_return_error", "-naccept", "1", "-www"},
        work_.path());
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    if (!server.ok()) return false;
    // s_server says ACCEPT once it listens.
    WaitUntil([&] { return server->stdout_text().find("ACCEPT") != std::string::npos; }, std::chrono::seconds(10));
    auto client = RunProcess({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port), "-cert", client_cert,
                              "-key", client_key, "-CAfile", client_roots, "-verify_return_error", "-brief", "-ign_eof"},
                             {.stdin_data = "GET / HTTP/1.0\r\n\r\n"}, std::chrono::seconds(20));
    server->Stop();
    EXPECT_TRUE(client.ok());
    last_client_ = client.ok() ? client->out + client->err : "";
    return client.ok() && client->exit_code == 0 && last_client_.find("200 ok") != std::string::npos;
  }

  static inline int tokens_ = 0;
  int fetches_ = 0;
  TempDir work_{"sigil-two-domains"};
  std::string cert_;
  std::string key_;
  std::string last_client_;
  Domain home_{"example.org"};
  Domain partner_{"partner.test"};
  Domain third_{"third.test"};
};

TEST_P(TwoDomainsTest, WorkloadsOfTwoDomainsTrustEachOtherAndFollowACaRotation) {
  cert_ = (work_.path() / "endpoint.crt").string();
  key_ = (work_.path() / "endpoint.key").string();
  auto made = RunProcess({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                          "-keyout", key_, "-out", cert_, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                          "subjectAltName=IP:127.0.0.1"});
  ASSERT_TRUE(made.ok() && made->exit_code == 0);
  home_.endpoint_port = FreeLoopbackPort();
  partner_.endpoint_port = FreeLoopbackPort();
  // The home CA lives 30 seconds: its successor is published at 15 s, within the test.
  StartServer(home_, partner_, {.ca_ttl = "30s", .default_x509_svid_ttl = "8s", .extra_yaml = "  default_jwt_svid_ttl: 8s\n"});
  StartServer(partner_, home_, {});
  if (!Web()) {
    // https_spiffe: each side's first bundle of the other is set by hand, once.
    for (auto [to, from] : {std::pair{&home_, &partner_}, std::pair{&partner_, &home_}}) {
      const auto path = work_.path() / ("first-" + from->name + ".json");
      WriteFile(path, OwnBundle(*from));
      ProcessOutput set = to->server->MustCli({"bundle", "set", "-id", "spiffe://" + from->name, "-path", path.string(), "-format", "spiffe"});
      ASSERT_EQ(set.exit_code, 0) << set.err;
    }
  }
  // Each server holds the other's bundle from its endpoint (the entries' -federatesWith needs it).
  for (Domain* domain : {&home_, &partner_}) {
    const std::string other = domain == &home_ ? partner_.name : home_.name;
    WaitUntil([&] {
      ProcessOutput listed = domain->server->MustCli({"bundle", "list", "-id", "spiffe://" + other, "-output", "json"});
      return listed.out.find("spiffe_refresh_hint") != std::string::npos;
    }, std::chrono::seconds(20));
  }
  StartAgentAndEntry(home_, partner_);
  StartAgentAndEntry(partner_, home_);

  // The home SVID lives 8 s: fetched last, so that it is still valid at the handshake below in a
  // sanitizer build too, where each fetch and command takes seconds.
  const auto partner_files = FetchFiles(partner_);
  const auto home_files = FetchFiles(home_);
  ASSERT_EQ(Certificates(home_files / "federated_bundle.0.0.pem"), 1u);
  // One, or already two when everything started slowly (the sanitizer builds): the rotation
  // below is then delivered before this first look, which proves the same.
  ASSERT_GE(Certificates(partner_files / "federated_bundle.0.0.pem"), 1u);
  // The home workload, as a client, and the partner workload, as a server, each with its own
  // SVID and the other domain's bundle.
  EXPECT_TRUE(MutualTls(partner_files, (home_files / "svid.0.pem").string(), (home_files / "svid.0.key").string(),
                        (home_files / "federated_bundle.0.0.pem").string()))
      << last_client_;
  // The federated bundle each workload got is the other domain's own.
  EXPECT_EQ(ReadFile(home_files / "federated_bundle.0.0.pem"), partner_.server->MustCli({"bundle", "show"}).out);

  // An SVID of a third trust domain, which neither federates with, is refused.
  StartServer(third_, home_, {});
  const auto third_dir = work_.path() / "third";
  std::filesystem::create_directories(third_dir);
  ProcessOutput minted = third_.server->MustCli({"x509", "mint", "-spiffeID", "spiffe://third.test/intruder", "-write", third_dir.string()});
  ASSERT_EQ(minted.exit_code, 0) << minted.err;
  EXPECT_FALSE(MutualTls(partner_files, (third_dir / "svid.pem").string(), (third_dir / "key.pem").string(),
                         (home_files / "federated_bundle.0.0.pem").string()))
      << last_client_;

  // The home CA's successor reaches the partner's workload, through the bundle endpoint, the
  // partner's server and agent, without a restart.
  bool rotated = WaitUntil([&] { return Certificates(FetchFiles(partner_) / "federated_bundle.0.0.pem") >= 2; },
                           std::chrono::seconds(40));
  EXPECT_TRUE(rotated);
}

INSTANTIATE_TEST_SUITE_P(Profiles, TwoDomainsTest, ::testing::Values("https_spiffe", "https_web"));

}  // namespace
}  // namespace sigil::testing
