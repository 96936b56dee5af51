// A real `serverd run` for integration tests: its own folder, config, admin socket and a CA key
// in a SoftHSM2 token, started as a child process and driven only through the `serverd`
// command line, as an operator would. The binary comes from $SIGIL_SERVERD (set by meson).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "tests/support/process.h"
#include "tests/support/softhsm.h"

namespace sigil::testing {

struct ServerdOptions {
  std::string trust_domain = "example.org";
  std::string ca_ttl = "24h";
  std::string default_x509_svid_ttl = "1h";
  std::string ca_mode = "direct";
  std::string extra_yaml;      // appended under `server:`
  std::string top_level_yaml;  // appended at the end (health_checks:, telemetry:)
  // Writes the same settings as SPIRE's server.conf (HCL) instead of server.yaml, with the CA
  // key in KeyManager "pkcs11"; then the two YAML texts above must be empty.
  bool spire_hcl = false;
  std::string top_level_hcl;  // appended at the end of server.conf
  // When set, serverd starts with this open-file limit, soft and hard, so it cannot raise it.
  int open_file_limit = 0;
  // Added to serverd's environment (SSL_CERT_FILE: the CAs an https_web endpoint chains to).
  std::map<std::string, std::string> env;
  // Flags after `serverd run -config <file>` (-logFile, -expandEnv).
  std::vector<std::string> run_flags;
};

class ServerdProcess {
 public:
  // Makes the folder, the token (in `hsm`) and the config; does not start serverd.
  static Result<std::unique_ptr<ServerdProcess>> Create(SoftHsm& hsm, const std::string& token_label,
                                                        ServerdOptions options = {});

  // Starts serverd and waits until `serverd healthcheck` passes.
  Status Start();
  // SIGTERM (graceful) or SIGKILL.
  int Stop();
  void Kill();

  // Runs `serverd <args> -socketPath <socket>`.
  Result<ProcessOutput> Cli(std::vector<std::string> args) const;
  // The same, recording a test failure (and returning no output) when serverd could not be run.
  ProcessOutput MustCli(std::vector<std::string> args) const;
  // A join token from `serverd token generate`; a test failure and "" when there is none.
  std::string NewJoinToken() const;

  // The running serverd's process id; -1 when it is not running.
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  const std::filesystem::path& dir() const { return dir_->path(); }
  // The agent API's loopback port.
  int agent_port() const { return agent_port_; }
  std::filesystem::path socket_path() const { return dir_->path() / "admin" / "api.sock"; }
  std::filesystem::path datastore_path() const { return dir_->path() / "data" / "datastore.sqlite3"; }
  // server.yaml, or server.conf with ServerdOptions::spire_hcl.
  const std::filesystem::path& config_path() const { return config_path_; }
  std::string logs() const;

  static std::string Binary();

 private:
  ServerdProcess() = default;
  std::unique_ptr<TempDir> dir_;
  std::filesystem::path config_path_;
  int open_file_limit_ = 0;
  std::map<std::string, std::string> env_;
  std::vector<std::string> run_flags_;
  std::optional<ChildProcess> process_;
  int agent_port_ = 0;
};

}  // namespace sigil::testing
