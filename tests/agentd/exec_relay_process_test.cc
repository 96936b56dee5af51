// A local user with no identity tries to take another binary's by exec after connect, against
// a real agentd (and serverd): the connection is opened by one binary and used once another
// runs, in the same process or in a child relaying it. agentd answers only the process that
// connected, running what it ran then (transport/peer_process.h).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/openssl_util.h"
#include "tests/agentd/agent_server_fixture.h"

namespace sigil::agentd::testing {
namespace {

using nlohmann::json;

constexpr uid_t kNobody = 65534;
const std::string kTrustedBinary = "/usr/bin/sleep";

std::string Sha256OfFile(const std::filesystem::path& path) {
  const std::string content = sigil::testing::ReadFile(path);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(content.data(), content.size(), digest, &length, EVP_sha256(), nullptr);
  return HexEncode({digest, length});
}

class ExecRelayTest : public AgentServerFixture {
 protected:
  void SetUp() override {
    AgentServerFixture::SetUp();
    StartServer();
    StartAgent();
  }

  // An entry with these selectors, parented to the agent; the warnings `entry create` gave.
  std::string CreateEntry(const std::string& path, const std::vector<std::string>& selectors) {
    std::vector<std::string> args = {"entry", "create", "-spiffeID", "spiffe://example.org" + path,
                                     "-parentID", agent_id_};
    for (const auto& selector : selectors) args.insert(args.end(), {"-selector", selector});
    auto out = Cli(args);
    EXPECT_EQ(out.exit_code, 0) << out.err;
    return out.err;
  }

  // The attacker, as nobody; its stock client's JSON answer.
  json Attack(const std::string& interpreter, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"setpriv", "--reuid", std::to_string(kNobody), "--regid",
                                     std::to_string(kNobody), "--clear-groups", interpreter,
                                     std::string(SIGIL_AGENTD_TEST_DIR) + "/exec_relay_attacker.py",
                                     (work_.path() / "stubs").string(), agent_->socket_path().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto run = sigil::testing::RunProcess(argv, {}, std::chrono::seconds(60));
    EXPECT_TRUE(run.ok());
    if (!run.ok()) return json();
    // The exit code is the first process's: in relay-from-child, the trusted binary it exec'd,
    // killed by the child once it has its answer.
    json out = json::parse(run->out, nullptr, false);
    EXPECT_FALSE(out.is_discarded()) << run->out << run->err;
    return out;
  }

  static std::set<std::string> SpiffeIds(const json& answer) {
    std::set<std::string> ids;
    if (!answer.contains("messages")) return ids;
    for (const auto& message : answer["messages"]) {
      for (const auto& svid : message["svids"]) ids.insert(svid["spiffe_id"].get<std::string>());
    }
    return ids;
  }

  // Waits until the attacker's honest twin (no exec, no child) receives `spiffe_id`: the agent
  // holds every entry made before it.
  void WaitForPythonIdentity(const std::string& spiffe_id) {
    json answer;
    const bool served = sigil::testing::WaitUntil(
        [&] { return SpiffeIds(answer = Attack("/usr/bin/python3", {"same-process"})).contains(spiffe_id); },
        std::chrono::seconds(20));
    ASSERT_TRUE(served) << answer.dump();
  }

  const std::string python_ = std::filesystem::canonical("/usr/bin/python3").string();
};

TEST_F(ExecRelayTest, AChildRelayingItsParentsConnectionAfterTheParentExecsABinarySelectedByPathIsRefused) {
  const std::string warning = CreateEntry("/sleep", {"unix:path:" + kTrustedBinary});
  EXPECT_NE(warning.find("without unix:uid or unix:gid"), std::string::npos) << warning;
  EXPECT_EQ(CreateEntry("/python", {"unix:path:" + python_, "unix:uid:" + std::to_string(kNobody)}), "");
  WaitForPythonIdentity("spiffe://example.org/python");

  json relayed = Attack("/usr/bin/python3", {"relay-from-child", kTrustedBinary});
  EXPECT_EQ(relayed.value("code", ""), "PERMISSION_DENIED") << relayed.dump();
  EXPECT_TRUE(SpiffeIds(relayed).empty()) << relayed.dump();
  EXPECT_NE(relayed.value("details", "").find("was written to by process"), std::string::npos) << relayed.dump();
  EXPECT_NE(agent_->logs().find("Workload API call refused"), std::string::npos);
}

TEST_F(ExecRelayTest, AChildRelayingItsParentsConnectionAfterTheParentExecsABinarySelectedByHashIsRefused) {
  const std::string selector = "unix:sha256:" + Sha256OfFile(kTrustedBinary);
  EXPECT_EQ(CreateEntry("/sleep", {selector, "unix:uid:" + std::to_string(kNobody)}), "");
  EXPECT_EQ(CreateEntry("/python", {"unix:path:" + python_, "unix:uid:" + std::to_string(kNobody)}), "");
  WaitForPythonIdentity("spiffe://example.org/python");

  json relayed = Attack("/usr/bin/python3", {"relay-from-child", kTrustedBinary});
  EXPECT_EQ(relayed.value("code", ""), "PERMISSION_DENIED") << relayed.dump();
  EXPECT_TRUE(SpiffeIds(relayed).empty()) << relayed.dump();
}

TEST_F(ExecRelayTest, AProcessThatExecsASelectedBinaryAfterConnectingIsRefusedOnThatConnection) {
  EXPECT_EQ(CreateEntry("/python", {"unix:path:" + python_, "unix:uid:" + std::to_string(kNobody)}), "");
  WaitForPythonIdentity("spiffe://example.org/python");
  // A copy of the interpreter is another binary: the one that connects.
  const auto copy = work_.path() / "attacker-python";
  std::filesystem::copy_file(python_, copy);
  ASSERT_EQ(::chmod(copy.c_str(), 0755), 0);

  json exec = Attack(copy.string(), {"exec-in-place", python_});
  EXPECT_EQ(exec.value("code", ""), "PERMISSION_DENIED") << exec.dump();
  EXPECT_TRUE(SpiffeIds(exec).empty()) << exec.dump();
  EXPECT_NE(exec.value("details", "").find("runs another binary than when it opened the connection"),
            std::string::npos)
      << exec.dump();
}

}  // namespace
}  // namespace sigil::agentd::testing
