// Sigil end to end: a real `serverd run` (CA key in a SoftHSM2 token) and a real `agentd run`
// attested with a join token, entries made through the `serverd` command line, and workloads
// calling the agent's Workload API with the stock Python gRPC client, as root and through
// setpriv as other uids.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "core/base64url.h"
#include "core/openssl_util.h"
#include "core/trust_bundle.h"
#include "core/x509_ca.h"
#include "tests/agentd/python_workload_client.h"
#include "tests/support/agentd_process.h"
#include "tests/support/serverd_process.h"
#include "tests/support/softhsm_suite.h"

namespace sigil::agentd::testing {
namespace {

using nlohmann::json;
using sigil::testing::AgentdOptions;
using sigil::testing::AgentdProcess;
using sigil::testing::ChildProcess;
using sigil::testing::ProcessOutput;
using sigil::testing::ServerdOptions;
using sigil::testing::ServerdProcess;
using sigil::testing::SoftHsm;
using sigil::testing::TempDir;
using sigil::testing::WaitUntil;
using sigil::testing::WriteFile;

constexpr uid_t kNobody = 65534;
constexpr uid_t kStranger = 65533;  // has no entry

std::string Unbase64(const json& value) {
  auto bytes = Base64Decode(value.get<std::string>());
  return bytes.ok() ? std::string(bytes->begin(), bytes->end()) : std::string();
}

// The certificates of a concatenated-DER field, leaf first.
std::vector<X509Ptr> Certs(const std::string& der) {
  std::vector<X509Ptr> certs;
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  const auto* end = p + der.size();
  while (p < end) {
    X509Ptr cert(d2i_X509(nullptr, &p, end - p));
    if (!cert) break;
    certs.push_back(std::move(cert));
  }
  return certs;
}

std::string LeafSerial(const json& svid) {
  auto certs = Certs(Unbase64(svid["x509_svid"]));
  return certs.empty() ? "" : SerialHex(certs.front().get());
}

class AgentdEndToEndTest : public sigil::testing::SoftHsmSuite<> {
 protected:
  void SetUp() override {
    ASSERT_EQ(::chmod(work_.path().c_str(), 0755), 0);
    auto python = PythonWorkloadClient::Create(work_.path() / "stubs");
    ASSERT_TRUE(python.ok()) << python.status().ToString();
    python_.emplace(std::move(*python));

    auto server = ServerdProcess::Create(*hsm_, "e2e-" + std::to_string(++tokens_));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();

    auto token = Cli({"token", "generate"});
    ASSERT_EQ(token.exit_code, 0) << token.err;
    token_ = token.out.substr(std::string("Token: ").size());
    while (!token_.empty() && token_.back() == '\n') token_.pop_back();
    agent_id_ = "spiffe://example.org/spire/agent/join_token/" + token_;
    auto bundle = Cli({"bundle", "show"});
    ASSERT_EQ(bundle.exit_code, 0) << bundle.err;
    WriteFile(work_.path() / "bundle.pem", bundle.out);
  }

  void TearDown() override {
    if (agent_) {
      agent_->Stop();
      EXPECT_EQ(agent_->logs().find("Sanitizer"), std::string::npos) << agent_->logs();
    }
    if (server_) {
      server_->Stop();
      EXPECT_EQ(server_->logs().find("Sanitizer"), std::string::npos) << server_->logs();
    }
    if (HasFailure() && agent_) std::cerr << "agentd logs:\n" << agent_->logs();
  }

  void StartAgent() {
    AgentdOptions options;
    options.server_port = server_->agent_port();
    options.join_token = token_;
    options.trust_bundle_path = work_.path() / "bundle.pem";
    auto agent = AgentdProcess::Create(options);
    ASSERT_TRUE(agent.ok()) << agent.status().ToString();
    agent_ = std::move(*agent);
    Status started = agent_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
  }

  ProcessOutput Cli(std::vector<std::string> args) {
    auto out = server_->Cli(std::move(args));
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : ProcessOutput{};
  }

  std::string CreateEntry(const std::string& path, uid_t uid, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"entry", "create", "-spiffeID", "spiffe://example.org" + path, "-parentID",
                                     agent_id_, "-selector", "unix:uid:" + std::to_string(uid), "-output", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto out = Cli(args);
    EXPECT_EQ(out.exit_code, 0) << out.err;
    return json::parse(out.out, nullptr, false)["results"][0]["entry"].value("id", "");
  }

  json Python(const std::vector<std::string>& args, std::optional<uid_t> uid = std::nullopt) {
    return python_->Run(agent_->socket_path().string(), args, uid);
  }

  // Waits until the X509 answer for this process holds `count` SVIDs.
  json WaitForSvids(size_t count) {
    json answer;
    WaitUntil(
        [&] {
          answer = Python({"x509", "1"});
          return answer.contains("messages") && answer["messages"].size() == 1 &&
                 answer["messages"][0]["svids"].size() == count;
        },
        std::chrono::seconds(15));
    return answer;
  }

  static inline int tokens_ = 0;
  TempDir work_{"sigil-e2e"};
  std::optional<PythonWorkloadClient> python_;
  std::unique_ptr<ServerdProcess> server_;
  std::unique_ptr<AgentdProcess> agent_;
  std::string token_;
  std::string agent_id_;
};

TEST_F(AgentdEndToEndTest, PythonGrpcFetchesSvidsAndBundlesThatVerify) {
  CreateEntry("/web", ::getuid(), {"-dns", "web.example.org"});
  StartAgent();
  json x509 = WaitForSvids(1);
  ASSERT_EQ(x509["messages"][0]["svids"].size(), 1u) << x509.dump();
  const json& svid = x509["messages"][0]["svids"][0];
  EXPECT_EQ(svid["spiffe_id"], "spiffe://example.org/web");

  // The real `openssl verify`, the chain against the bundle the API handed out.
  std::vector<X509Ptr> chain = Certs(Unbase64(svid["x509_svid"]));
  std::vector<X509Ptr> roots = Certs(Unbase64(svid["bundle"]));
  ASSERT_FALSE(chain.empty());
  ASSERT_FALSE(roots.empty());
  std::vector<X509*> leaf = {chain.front().get()};
  std::vector<X509*> intermediates;
  for (size_t i = 1; i < chain.size(); ++i) intermediates.push_back(chain[i].get());
  std::vector<X509*> root_certs;
  for (const auto& root : roots) root_certs.push_back(root.get());
  WriteFile(work_.path() / "leaf.pem", *CertsToPem(leaf));
  WriteFile(work_.path() / "intermediates.pem", intermediates.empty() ? "" : *CertsToPem(intermediates));
  WriteFile(work_.path() / "roots.pem", *CertsToPem(root_certs));
  std::vector<std::string> verify = {"openssl", "verify", "-purpose", "sslclient", "-CAfile",
                                     (work_.path() / "roots.pem").string()};
  if (!intermediates.empty()) verify.insert(verify.end(), {"-untrusted", (work_.path() / "intermediates.pem").string()});
  verify.push_back((work_.path() / "leaf.pem").string());
  auto verified = sigil::testing::RunProcess(verify);
  ASSERT_TRUE(verified.ok());
  EXPECT_EQ(verified->exit_code, 0) << verified->out << verified->err;
  const std::string key_der = Unbase64(svid["x509_svid_key"]);
  auto key = PrivateKeyFromDer(std::span(reinterpret_cast<const uint8_t*>(key_der.data()), key_der.size()));
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(X509_check_private_key(chain.front().get(), key->get()), 1);

  json bundles = Python({"x509-bundles"});
  ASSERT_TRUE(bundles["bundles"].contains("spiffe://example.org")) << bundles.dump();
  EXPECT_EQ(Unbase64(bundles["bundles"]["spiffe://example.org"]), Unbase64(svid["bundle"]));
  json jwt_bundles = Python({"jwt-bundles"});
  ASSERT_TRUE(jwt_bundles["bundles"].contains("spiffe://example.org")) << jwt_bundles.dump();
  auto jwks = json::parse(jwt_bundles["bundles"]["spiffe://example.org"].get<std::string>(), nullptr, false);
  ASSERT_FALSE(jwks["keys"].empty()) << jwks.dump();

  // A JWT-SVID minted by serverd through the agent, and validated by the agent.
  json jwt = Python({"jwt", "", "payments"});
  ASSERT_EQ(jwt["svids"].size(), 1u) << jwt.dump();
  EXPECT_EQ(jwt["svids"][0]["spiffe_id"], "spiffe://example.org/web");
  const std::string token = jwt["svids"][0]["svid"];
  json valid = Python({"validate", "payments", token});
  EXPECT_EQ(valid["spiffe_id"], "spiffe://example.org/web") << valid.dump();
  json wrong_audience = Python({"validate", "billing", token});
  EXPECT_EQ(wrong_audience["code"], "INVALID_ARGUMENT") << wrong_audience.dump();
  // Asked again before half-life, the same token comes from the agent's cache.
  json again = Python({"jwt", "", "payments"});
  EXPECT_EQ(again["svids"][0]["svid"], token);
}

TEST_F(AgentdEndToEndTest, EachUidGetsItsOwnIdentityAndStrangersGetNone) {
  CreateEntry("/root-app", ::getuid());
  CreateEntry("/nobody-app", kNobody);
  StartAgent();
  json mine = WaitForSvids(1);
  EXPECT_EQ(mine["messages"][0]["svids"][0]["spiffe_id"], "spiffe://example.org/root-app");
  json nobody = Python({"x509", "1"}, kNobody);
  ASSERT_EQ(nobody["messages"].size(), 1u) << nobody.dump();
  ASSERT_EQ(nobody["messages"][0]["svids"].size(), 1u);
  EXPECT_EQ(nobody["messages"][0]["svids"][0]["spiffe_id"], "spiffe://example.org/nobody-app");
  EXPECT_NE(LeafSerial(nobody["messages"][0]["svids"][0]), LeafSerial(mine["messages"][0]["svids"][0]));

  json stranger = Python({"x509", "1"}, kStranger);
  EXPECT_EQ(stranger["code"], "PERMISSION_DENIED") << stranger.dump();
  EXPECT_EQ(stranger["details"], "no identity issued");
  json stranger_jwt = Python({"jwt", "", "payments"}, kStranger);
  EXPECT_EQ(stranger_jwt["code"], "PERMISSION_DENIED") << stranger_jwt.dump();

  json headless = Python({"no-header"});
  for (const auto& [method, outcome] : headless.items()) {
    EXPECT_EQ(outcome["code"], "INVALID_ARGUMENT") << method << ": " << outcome.dump();
  }
  ASSERT_EQ(headless.size(), 5u);

  // The agentd command line reads the same socket.
  auto fetched = agent_->Cli({"api", "fetch", "x509"}, kNobody);
  ASSERT_TRUE(fetched.ok());
  EXPECT_EQ(fetched->exit_code, 0) << fetched->err;
  EXPECT_NE(fetched->out.find("spiffe://example.org/nobody-app"), std::string::npos) << fetched->out;
}

TEST_F(AgentdEndToEndTest, AWatcherSeesRotationBeforeHalfLifeAndEntryChangesWithinASecond) {
  const std::string entry = CreateEntry("/rotating", ::getuid(), {"-x509SVIDTTL", "20"});
  StartAgent();
  WaitForSvids(1);
  auto watcher = ChildProcess::Start(python_->Argv(agent_->socket_path().string(), {"watch"}), work_.path());
  ASSERT_TRUE(watcher.ok()) << watcher.status().ToString();

  struct Seen {
    json message;
    std::chrono::system_clock::time_point at;
  };
  std::vector<Seen> seen;
  WatchedLines lines(*watcher);
  auto poll = [&] {
    lines.Poll([&](json message) { seen.push_back({std::move(message), std::chrono::system_clock::now()}); });
  };
  ASSERT_TRUE(WaitUntil([&] { poll(); return !seen.empty(); }, std::chrono::seconds(10))) << watcher->stderr_text();
  ASSERT_EQ(seen[0].message["svids"].size(), 1u) << seen[0].message.dump();
  const std::string first_serial = LeafSerial(seen[0].message["svids"][0]);
  auto first_chain = Certs(Unbase64(seen[0].message["svids"][0]["x509_svid"]));
  ASSERT_FALSE(first_chain.empty());
  const auto not_before = CertNotBefore(first_chain.front().get());
  const auto half_life = not_before + (CertNotAfter(first_chain.front().get()) - not_before) / 2;

  // Rotation: a new SVID for the same entry, pushed before the old one's half-life.
  ASSERT_TRUE(WaitUntil(
      [&] {
        poll();
        return seen.back().message["svids"].size() == 1 && LeafSerial(seen.back().message["svids"][0]) != first_serial;
      },
      std::chrono::seconds(30)))
      << agent_->logs();
  EXPECT_LE(seen.back().at, half_life + std::chrono::milliseconds(200))
      << "pushed " << std::chrono::duration_cast<std::chrono::milliseconds>(seen.back().at - half_life).count()
      << " ms after half-life";

  // A new entry for this uid reaches the watcher within a second of `entry create` returning.
  size_t before = seen.size();
  CreateEntry("/second", ::getuid());
  auto created_at = std::chrono::system_clock::now();
  ASSERT_TRUE(WaitUntil([&] { poll(); return seen.size() > before && seen.back().message["svids"].size() == 2; },
                        std::chrono::seconds(5)));
  EXPECT_LT(seen.back().at - created_at, std::chrono::seconds(1));

  // An update (a DNS name added) likewise: the new SVID carries it.
  before = seen.size();
  auto updated = Cli({"entry", "update", "-entryID", entry, "-spiffeID", "spiffe://example.org/rotating", "-parentID",
                      agent_id_, "-selector", "unix:uid:" + std::to_string(::getuid()), "-x509SVIDTTL", "20", "-dns",
                      "rotating.example.org"});
  ASSERT_EQ(updated.exit_code, 0) << updated.err;
  auto updated_at = std::chrono::system_clock::now();
  auto has_dns = [&] {
    for (const auto& svid : seen.back().message["svids"]) {
      auto certs = Certs(Unbase64(svid["x509_svid"]));
      if (certs.empty()) continue;
      if (X509_check_host(certs.front().get(), "rotating.example.org", 0, 0, nullptr) == 1) return true;
    }
    return false;
  };
  ASSERT_TRUE(WaitUntil([&] { poll(); return seen.size() > before && has_dns(); }, std::chrono::seconds(5)));
  EXPECT_LT(seen.back().at - updated_at, std::chrono::seconds(1));
  watcher->Stop();
}

TEST_F(AgentdEndToEndTest, WithServerdDownFetchesAreServedFromCacheAndRotationResumesAfter) {
  CreateEntry("/resilient", ::getuid(), {"-x509SVIDTTL", "20"});
  StartAgent();
  json before = WaitForSvids(1);
  const std::string serial = LeafSerial(before["messages"][0]["svids"][0]);
  json jwt = Python({"jwt", "", "payments"});
  ASSERT_EQ(jwt["svids"].size(), 1u) << jwt.dump();

  server_->Stop();
  for (int i = 0; i < 3; ++i) {
    const auto started = std::chrono::steady_clock::now();
    json cached = Python({"x509", "1"});
    ASSERT_EQ(cached["messages"].size(), 1u) << cached.dump();
    EXPECT_EQ(cached["messages"][0]["svids"][0]["spiffe_id"], "spiffe://example.org/resilient");
    json cached_jwt = Python({"jwt", "", "payments"});
    EXPECT_EQ(cached_jwt["svids"][0]["svid"], jwt["svids"][0]["svid"]) << cached_jwt.dump();
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  }
  auto fetched = agent_->Cli({"api", "fetch", "x509"});
  ASSERT_TRUE(fetched.ok());
  EXPECT_EQ(fetched->exit_code, 0) << fetched->err;

  ASSERT_TRUE(server_->Start().ok()) << server_->logs();
  std::string rotated;
  ASSERT_TRUE(WaitUntil(
      [&] {
        json now = Python({"x509", "1"});
        if (!now.contains("messages") || now["messages"].empty()) return false;
        rotated = LeafSerial(now["messages"][0]["svids"][0]);
        return rotated != serial;
      },
      std::chrono::seconds(40)))
      << agent_->logs();
}

TEST_F(AgentdEndToEndTest, ARestartedAgentKeepsItsIdentityWithoutANewToken) {
  CreateEntry("/steady", ::getuid());
  StartAgent();
  WaitForSvids(1);
  struct stat key_stat {};
  ASSERT_EQ(::stat((agent_->data_dir() / "agent_identity.pem").c_str(), &key_stat), 0);
  EXPECT_EQ(key_stat.st_mode & 0777, 0600u);
  agent_->Stop();
  // The token was spent at the first start; the second start must not need it.
  ASSERT_TRUE(agent_->Start().ok()) << agent_->logs();
  EXPECT_NE(agent_->logs().find("re-using the agent SVID"), std::string::npos) << agent_->logs();
  json after = WaitForSvids(1);
  EXPECT_EQ(after["messages"][0]["svids"][0]["spiffe_id"], "spiffe://example.org/steady");
  auto agents = Cli({"agent", "list"});
  EXPECT_NE(agents.out.find(agent_id_), std::string::npos) << agents.out;
  EXPECT_EQ(Cli({"agent", "count"}).out.find("1 attested agent"), 0u) << Cli({"agent", "count"}).out;
}

}  // namespace
}  // namespace sigil::agentd::testing
