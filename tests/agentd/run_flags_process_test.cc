// The flags of `run` (and `validate`) both daemons take from SPIRE, on real serverd and agentd
// processes: -logFile, reopened at SIGHUP (and SIGUSR2, SPIRE's signal for it) after logrotate
// renamed it, while the daemon keeps serving; -logFormat json; -expandEnv filling a config's
// ${VAR}s; agentd's -trustBundle and -joinTokenFile in place of the config's keys; and `run` and
// `validate` in both binaries' top-level help.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/agentd/agent_server_fixture.h"

namespace sigil::agentd::testing {
namespace {

using sigil::testing::AgentdOptions;
using sigil::testing::AgentdProcess;
using sigil::testing::ProcessOptions;
using sigil::testing::ProcessOutput;
using sigil::testing::ReadFile;
using sigil::testing::RunProcess;
using sigil::testing::ServerdOptions;
using sigil::testing::ServerdProcess;
using sigil::testing::WaitUntil;
using sigil::testing::WriteFile;

constexpr auto npos = std::string::npos;

ProcessOutput RunCommand(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {}) {
  auto run = RunProcess(argv, ProcessOptions{.env = env}, std::chrono::seconds(30));
  EXPECT_TRUE(run.ok()) << run.status().ToString();
  return run.ok() ? *run : ProcessOutput{};
}

// The lines of a log written with -logFormat json, each parsed; a line that is not one JSON
// object fails the test.
std::vector<nlohmann::json> JsonLines(const std::string& log) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
    EXPECT_TRUE(parsed.is_object()) << "not a JSON object: " << line;
    if (parsed.is_object()) lines.push_back(std::move(parsed));
  }
  return lines;
}

class RunFlagsTest : public AgentServerFixture {
 protected:
  // Renames `log` away as logrotate does, sends `signal` to `pid`, and waits for the daemon's
  // line in a new file under the old name.
  static void Rotate(const std::filesystem::path& log, const std::string& rotated_name, pid_t pid, int signal) {
    const size_t reopened_before = LinesWith(ReadFile(log), "log file reopened");
    std::filesystem::rename(log, log.parent_path() / rotated_name);
    ASSERT_EQ(::kill(pid, signal), 0);
    EXPECT_TRUE(WaitUntil([&] { return ReadFile(log).find("msg=\"log file reopened\"") != npos; }))
        << "no reopened " << log;
    EXPECT_EQ(LinesWith(ReadFile(log.parent_path() / rotated_name), "log file reopened"), reopened_before);
  }
};

TEST_F(RunFlagsTest, SighupReopensTheLogFileAndBothDaemonsKeepServing) {
  const auto server_log = work_.path() / "serverd.log";
  ServerdOptions server_options;
  server_options.run_flags = {"-logFile", server_log.string()};
  StartServer(server_options);
  const auto agent_log = work_.path() / "agentd.log";
  AgentdOptions agent_options;
  agent_options.run_flags = {"-logFile", agent_log.string()};
  StartAgent(agent_options);
  CreateEntry("/web", ::getuid());
  ASSERT_FALSE(WaitForSvidSerial().empty());

  // The lines go to the files, not to stderr.
  EXPECT_NE(ReadFile(server_log).find("msg=\"entry created\""), npos) << ReadFile(server_log);
  EXPECT_NE(ReadFile(agent_log).find("level=info"), npos);
  EXPECT_EQ(server_->logs().find("level="), npos) << server_->logs();
  EXPECT_EQ(agent_->logs().find("level="), npos) << agent_->logs();

  Rotate(server_log, "serverd.log.1", server_->pid(), SIGHUP);
  // serverd still answers, and its next lines are in the new file.
  CreateEntry("/db", ::getuid() + 1);
  EXPECT_TRUE(WaitUntil([&] { return ReadFile(server_log).find("msg=\"entry created\"") != npos; }));
  EXPECT_EQ(LinesWith(ReadFile(work_.path() / "serverd.log.1"), "msg=\"entry created\""), 1u);

  Rotate(agent_log, "agentd.log.1", agent_->pid(), SIGHUP);
  Rotate(agent_log, "agentd.log.2", agent_->pid(), SIGUSR2);
  EXPECT_FALSE(agent_->WaitForExit(std::chrono::milliseconds(300)).has_value()) << "agentd exited at a signal";
  EXPECT_FALSE(LeafSerial(FirstSvid()).empty()) << "agentd stopped serving";

  // Both still stop in order, into the reopened files.
  EXPECT_EQ(agent_->Stop(), 0);
  EXPECT_NE(ReadFile(agent_log).find("msg=\"agentd stopped\""), npos) << ReadFile(agent_log);
  EXPECT_EQ(server_->Stop(), 0);
  EXPECT_NE(ReadFile(server_log).find("msg=\"serverd stopped\""), npos) << ReadFile(server_log);
}

TEST_F(RunFlagsTest, AgentdTakesTokenAndBundleFromFlagsExpandsItsConfigAndLogsJson) {
  StartServer();
  const auto token_file = work_.path() / "join.token";
  WriteFile(token_file, "  " + token_ + "\n");
  const auto bundle = work_.path() / "bundle.pem";
  const auto agent_log = work_.path() / "agentd.json.log";
  const std::map<std::string, std::string> env = {{"SIGIL_TEST_TRUST_DOMAIN", "example.org"}};

  // No join_token and no trust_bundle_path in the file: they come from the flags.
  AgentdOptions options;
  options.trust_domain = "${SIGIL_TEST_TRUST_DOMAIN}";
  options.server_port = server_->agent_port();
  options.run_flags = {"-expandEnv",  "-joinTokenFile", token_file.string(), "-trustBundle", bundle.string(),
                       "-logFormat",  "json",           "-logFile",          agent_log.string()};
  auto agent = AgentdProcess::Create(options);
  ASSERT_TRUE(agent.ok()) << agent.status().ToString();
  const std::string config = (*agent)->config_path().string();
  const std::vector<std::string> validate = {AgentdProcess::Binary(), "validate", "-config", config,
                                             "-joinTokenFile", token_file.string(), "-trustBundle", bundle.string()};

  auto unexpanded = RunCommand(validate, env);
  EXPECT_EQ(unexpanded.exit_code, 1);
  EXPECT_NE(unexpanded.err.find("trust_domain"), npos) << unexpanded.err;
  auto expanded_args = validate;
  expanded_args.push_back("-expandEnv");
  auto expanded = RunCommand(expanded_args, env);
  EXPECT_EQ(expanded.exit_code, 0) << expanded.err;
  EXPECT_EQ(expanded.out, "agentd configuration file is valid.\n");
  auto unset = RunCommand(expanded_args);
  EXPECT_EQ(unset.exit_code, 1);
  EXPECT_NE(unset.err.find("trust_domain"), npos) << unset.err;

  auto both_tokens = validate;
  both_tokens.insert(both_tokens.end(), {"-expandEnv", "-joinToken", token_});
  auto refused = RunCommand(both_tokens, env);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("join_token_file: cannot be given together with join_token"), npos) << refused.err;
  WriteFile(work_.path() / "empty.token", "\n");
  auto empty_args = expanded_args;
  empty_args[5] = (work_.path() / "empty.token").string();
  auto empty = RunCommand(empty_args, env);
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_NE(empty.err.find("join_token_file: the join token file " + empty_args[5] + " is empty"), npos)
      << empty.err;

  agent_ = std::move(*agent);
  agent_->SetEnv(env);
  Status started = agent_->Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  // The entry is parented to the agent of the token in the file: it attested with that token.
  CreateEntry("/web", ::getuid());
  EXPECT_FALSE(WaitForSvidSerial().empty());

  const auto lines = JsonLines(ReadFile(agent_log));
  EXPECT_GT(lines.size(), 3u);
  for (const auto& line : lines) {
    EXPECT_TRUE(line.contains("time") && line.contains("level") && line.contains("msg")) << line.dump();
  }
}

TEST_F(RunFlagsTest, ServerdExpandsItsConfigAndLogsJson) {
  const auto server_log = work_.path() / "serverd.json.log";
  ServerdOptions options;
  options.default_x509_svid_ttl = "${SIGIL_TEST_SVID_TTL}";
  options.env = {{"SIGIL_TEST_SVID_TTL", "2h"}};
  options.run_flags = {"-expandEnv", "-logFormat", "JSON", "-logFile", server_log.string()};
  auto server = ServerdProcess::Create(*hsm_, "run-flags", options);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const std::string config = (*server)->config_path().string();

  auto unexpanded = RunCommand({ServerdProcess::Binary(), "validate", "-config", config}, options.env);
  EXPECT_EQ(unexpanded.exit_code, 1);
  EXPECT_NE(unexpanded.err.find("default_x509_svid_ttl"), npos) << unexpanded.err;
  auto expanded = RunCommand({ServerdProcess::Binary(), "validate", "-config", config, "-expandEnv"}, options.env);
  EXPECT_EQ(expanded.exit_code, 0) << expanded.err;
  auto bad_format = RunCommand({ServerdProcess::Binary(), "validate", "-config", config, "-expandEnv", "-logFormat", "xml"},
                        options.env);
  EXPECT_EQ(bad_format.exit_code, 1);
  EXPECT_NE(bad_format.err.find("log_format: 'xml' is not one of text, json"), npos) << bad_format.err;

  server_ = std::move(*server);
  Status started = server_->Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  EXPECT_EQ(server_->MustCli({"entry", "create", "-spiffeID", "spiffe://example.org/web", "-parentID",
                              "spiffe://example.org/host", "-selector", "unix:uid:1001"})
                .exit_code,
            0);
  EXPECT_EQ(server_->Stop(), 0);
  const auto lines = JsonLines(ReadFile(server_log));
  ASSERT_GT(lines.size(), 3u);
  size_t created = 0;
  for (const auto& line : lines) created += line.value("msg", "") == "entry created" ? 1 : 0;
  EXPECT_EQ(created, 1u);
  EXPECT_EQ(lines.back().value("msg", ""), "serverd stopped");
}

TEST_F(RunFlagsTest, TopLevelHelpOfBothBinariesListsRunAndValidate) {
  for (const std::string& binary : {ServerdProcess::Binary(), AgentdProcess::Binary()}) {
    auto help = RunCommand({binary, "-h"});
    EXPECT_EQ(help.exit_code, 0) << help.err;
    EXPECT_NE(help.out.find("\n  run "), npos) << help.out;
    EXPECT_NE(help.out.find("\n  validate "), npos) << help.out;
    EXPECT_NE(help.out.find("\n  healthcheck "), npos) << help.out;
  }
}

}  // namespace
}  // namespace sigil::agentd::testing
