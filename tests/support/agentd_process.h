// A real `agentd run` for integration tests, attesting to a ServerdProcess with a join token
// (or, configured so in top_level_yaml, with its TPM DevID):
// its own folder, config, data_dir and Workload API socket (in a 0755 folder, so workloads of
// other uids can reach it), driven through the `agentd` command line. The binary comes from
// $SIGIL_AGENTD (set by meson).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "tests/support/process.h"

namespace sigil::testing {

struct AgentdOptions {
  std::string trust_domain = "example.org";
  int server_port = 0;
  std::string join_token;
  std::filesystem::path trust_bundle_path;
  std::string log_level = "debug";
  std::string extra_yaml;      // appended under `agent:`
  std::string top_level_yaml;  // appended at the end (tpm_devid:, health_checks:)
  // Writes the same settings as SPIRE's agent.conf (HCL) instead of agent.yaml; then the two
  // YAML texts above must be empty.
  bool spire_hcl = false;
  // Flags after `agentd run -config <file>` (-joinTokenFile, -logFile, -expandEnv).
  std::vector<std::string> run_flags;
};

class AgentdProcess {
 public:
  static Result<std::unique_ptr<AgentdProcess>> Create(AgentdOptions options);

  // Starts agentd and waits until `agentd healthcheck` passes (attested and synced).
  Status Start();
  // The same, waiting only until the Workload API answers (`healthcheck --shallow`): for an
  // agent that cannot reach serverd.
  Status StartUnsynced();
  // Environment variables for the next starts (SIGIL_FAULT_POINT), replacing earlier ones.
  void SetEnv(std::map<std::string, std::string> env) { env_ = std::move(env); }
  // Waits up to `timeout` for agentd to exit by itself; its exit code as ProcessOutput's.
  std::optional<int> WaitForExit(std::chrono::milliseconds timeout);
  int Stop();
  void Kill();

  // Runs `agentd <args> -socketPath <socket>`, as root or (with `uid`) through setpriv.
  Result<ProcessOutput> Cli(std::vector<std::string> args, std::optional<uid_t> uid = std::nullopt) const;
  // The argv of the same command, for a ChildProcess (`api watch`).
  std::vector<std::string> CliArgv(std::vector<std::string> args, std::optional<uid_t> uid = std::nullopt) const;

  const std::filesystem::path& dir() const { return dir_->path(); }
  std::filesystem::path socket_path() const { return dir_->path() / "public" / "api.sock"; }
  std::filesystem::path data_dir() const { return dir_->path() / "data"; }
  // agent.yaml, or agent.conf with AgentdOptions::spire_hcl.
  const std::filesystem::path& config_path() const { return config_path_; }
  std::string logs() const;
  pid_t pid() const { return process_ ? process_->pid() : -1; }

  static std::string Binary();

 private:
  AgentdProcess() = default;
  std::unique_ptr<TempDir> dir_;
  std::filesystem::path config_path_;
  std::vector<std::string> run_flags_;
  std::optional<ChildProcess> process_;
  Status StartWaitingFor(const std::vector<std::string>& healthcheck);

  std::string previous_logs_;  // of earlier runs, after a restart
  std::map<std::string, std::string> env_;
};

}  // namespace sigil::testing
