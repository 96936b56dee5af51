// A real serverd (CA key in a SoftHSM2 token) and a real agentd attested with a join token,
// for process tests that stop, kill and restart either of them: entries made through the
// `serverd` command line, workloads served through the stock Python gRPC client.
#pragma once

#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/base64url.h"
#include "core/openssl_util.h"
#include "tests/agentd/python_workload_client.h"
#include "tests/support/agentd_process.h"
#include "tests/support/serverd_process.h"
#include "tests/support/softhsm_suite.h"

namespace sigil::agentd::testing {

using sigil::testing::LinesWith;

inline std::string Unbase64(const nlohmann::json& value) {
  auto bytes = Base64Decode(value.get<std::string>());
  return bytes.ok() ? std::string(bytes->begin(), bytes->end()) : std::string();
}

// The serial of the leaf of one X509SVID of a Workload API answer; empty when there is none.
inline std::string LeafSerial(const nlohmann::json& svid) {
  const std::string der = svid.is_object() && svid.contains("x509_svid") ? Unbase64(svid["x509_svid"]) : "";
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509Ptr leaf(der.empty() ? nullptr : d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  return leaf ? SerialHex(leaf.get()) : "";
}

class AgentServerFixture : public sigil::testing::SoftHsmSuite<> {
 protected:
  void SetUp() override {
    ASSERT_EQ(::chmod(work_.path().c_str(), 0755), 0);
    auto python = PythonWorkloadClient::Create(work_.path() / "stubs");
    ASSERT_TRUE(python.ok()) << python.status().ToString();
    python_.emplace(std::move(*python));
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
    if (HasFailure() && server_) std::cerr << "serverd logs:\n" << server_->logs();
  }

  // serverd with `options`, a join token for the agent and the trust bundle it pins.
  void StartServer(sigil::testing::ServerdOptions options = {}) {
    auto server = sigil::testing::ServerdProcess::Create(*hsm_, "fixture-" + std::to_string(++tokens_), options);
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
    sigil::testing::WriteFile(work_.path() / "bundle.pem", bundle.out);
  }

  // agentd attested with the join token; `agent_yaml` is added under `agent:`, `top_level_yaml`
  // after it (telemetry:, health_checks:).
  void StartAgent(const std::string& agent_yaml = "", const std::string& top_level_yaml = "") {
    sigil::testing::AgentdOptions options;
    options.extra_yaml = agent_yaml;
    options.top_level_yaml = top_level_yaml;
    StartAgent(std::move(options));
  }

  // The same with `options`, whose server port, join token and trust bundle are this fixture's
  // unless set.
  void StartAgent(sigil::testing::AgentdOptions options) {
    if (options.server_port == 0) options.server_port = server_->agent_port();
    if (options.join_token.empty()) options.join_token = token_;
    if (options.trust_bundle_path.empty()) options.trust_bundle_path = work_.path() / "bundle.pem";
    auto agent = sigil::testing::AgentdProcess::Create(options);
    ASSERT_TRUE(agent.ok()) << agent.status().ToString();
    agent_ = std::move(*agent);
    Status started = agent_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
  }

  sigil::testing::ProcessOutput Cli(std::vector<std::string> args) {
    auto out = server_->Cli(std::move(args));
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : sigil::testing::ProcessOutput{};
  }

  // An entry for the workloads of `uid`, parented to the agent; returns its id.
  std::string CreateEntry(const std::string& path, uid_t uid) {
    auto out = Cli({"entry", "create", "-spiffeID", "spiffe://example.org" + path, "-parentID", agent_id_,
                    "-selector", "unix:uid:" + std::to_string(uid), "-output", "json"});
    EXPECT_EQ(out.exit_code, 0) << out.err;
    return nlohmann::json::parse(out.out, nullptr, false)["results"][0]["entry"].value("id", "");
  }

  nlohmann::json Python(const std::vector<std::string>& args, std::optional<uid_t> uid = std::nullopt) {
    return python_->Run(agent_->socket_path().string(), args, uid);
  }

  // The first X509SVID a workload of `uid` (this process's own when unset) receives; null
  // when it receives none (the whole answer is in `answer`).
  nlohmann::json FirstSvid(std::optional<uid_t> uid = std::nullopt, nlohmann::json* answer = nullptr) {
    nlohmann::json x509 = Python({"x509", "1"}, uid);
    if (answer != nullptr) *answer = x509;
    if (!x509.contains("messages") || x509["messages"].empty() || x509["messages"][0]["svids"].empty()) return {};
    return x509["messages"][0]["svids"][0];
  }

  // Waits until a workload of `uid` receives an SVID; its leaf's serial, or empty.
  std::string WaitForSvidSerial(std::optional<uid_t> uid = std::nullopt) {
    std::string serial;
    sigil::testing::WaitUntil([&] { return !(serial = LeafSerial(FirstSvid(uid))).empty(); },
                              std::chrono::seconds(15));
    return serial;
  }

  static inline int tokens_ = 0;
  sigil::testing::TempDir work_{"sigil-agent-server"};
  std::optional<PythonWorkloadClient> python_;
  std::unique_ptr<sigil::testing::ServerdProcess> server_;
  std::unique_ptr<sigil::testing::AgentdProcess> agent_;
  std::string token_;
  std::string agent_id_;
};

}  // namespace sigil::agentd::testing
