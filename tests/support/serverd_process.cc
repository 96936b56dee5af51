#include "tests/support/serverd_process.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace sigil::testing {

std::string ServerdProcess::Binary() {
  const char* path = std::getenv("SIGIL_SERVERD");
  return path != nullptr ? path : "serverd";
}

namespace {

std::string ServerYaml(const ServerdOptions& options, const std::filesystem::path& dir, int port,
                       const SoftHsmTokenInfo& token) {
  return "server:\n"
         "  trust_domain: " + options.trust_domain + "\n"
         "  bind_address: 127.0.0.1\n"
         "  bind_port: " + std::to_string(port) + "\n"
         "  socket_path: " + (dir / "admin" / "api.sock").string() + "\n"
         "  data_dir: " + (dir / "data").string() + "\n"
         "  ca_ttl: " + options.ca_ttl + "\n"
         "  default_x509_svid_ttl: " + options.default_x509_svid_ttl + "\n"
         "  ca_mode: " + options.ca_mode + "\n" + options.extra_yaml +
         "key_store:\n"
         "  kind: pkcs11\n"
         "  module_path: " + std::string(kSoftHsmModule) + "\n"
         "  token_label: " + token.label + "\n"
         "  pin_file: " + token.pin_file.string() + "\n" + options.top_level_yaml;
}

// The same settings as SPIRE's conf/server/server.conf writes them: the port and the log level
// as SPIRE's sample has them (quoted, uppercase), the token as Sigil's KeyManager "pkcs11".
std::string ServerConf(const ServerdOptions& options, const std::filesystem::path& dir, int port,
                       const SoftHsmTokenInfo& token) {
  return "server {\n"
         "    trust_domain = \"" + options.trust_domain + "\"\n"
         "    bind_address = \"127.0.0.1\"\n"
         "    bind_port = \"" + std::to_string(port) + "\"\n"
         "    socket_path = \"" + (dir / "admin" / "api.sock").string() + "\"\n"
         "    data_dir = \"" + (dir / "data").string() + "\"\n"
         "    log_level = \"INFO\"\n"
         "    ca_ttl = \"" + options.ca_ttl + "\"\n"
         "    default_x509_svid_ttl = \"" + options.default_x509_svid_ttl + "\"\n"
         "    ca_mode = \"" + options.ca_mode + "\"\n"
         "}\n\n"
         "plugins {\n"
         "    DataStore \"sql\" {\n"
         "        plugin_data {\n"
         "            database_type = \"sqlite3\"\n"
         "            connection_string = \"" + (dir / "data" / "datastore.sqlite3").string() + "\"\n"
         "        }\n"
         "    }\n"
         "    KeyManager \"pkcs11\" {\n"
         "        plugin_data {\n"
         "            module_path = \"" + std::string(kSoftHsmModule) + "\"\n"
         "            token_label = \"" + token.label + "\"\n"
         "            pin_file = \"" + token.pin_file.string() + "\"\n"
         "        }\n"
         "    }\n"
         "    NodeAttestor \"join_token\" {\n"
         "        plugin_data {}\n"
         "    }\n"
         "}\n" + options.top_level_hcl;
}

}  // namespace

Result<std::unique_ptr<ServerdProcess>> ServerdProcess::Create(SoftHsm& hsm, const std::string& token_label,
                                                               ServerdOptions options) {
  auto server = std::unique_ptr<ServerdProcess>(new ServerdProcess());
  server->dir_ = std::make_unique<TempDir>("sigil-serverd");
  SIGIL_ASSIGN_OR_RETURN(SoftHsmTokenInfo token, hsm.InitToken(token_label));
  const auto& dir = server->dir_->path();
  server->agent_port_ = FreeLoopbackPort();
  server->open_file_limit_ = options.open_file_limit;
  server->env_ = options.env;
  server->run_flags_ = options.run_flags;
  if (options.spire_hcl && (!options.extra_yaml.empty() || !options.top_level_yaml.empty())) {
    return InvalidArgumentError("ServerdOptions: YAML text for a server.conf written in HCL");
  }
  server->config_path_ = dir / (options.spire_hcl ? "server.conf" : "server.yaml");
  WriteFile(server->config_path_, options.spire_hcl ? ServerConf(options, dir, server->agent_port_, token)
                                                    : ServerYaml(options, dir, server->agent_port_, token));
  return server;
}

Status ServerdProcess::Start() {
  std::vector<std::string> argv = {Binary(), "run", "-config", config_path_.string()};
  argv.insert(argv.end(), run_flags_.begin(), run_flags_.end());
  if (open_file_limit_ > 0) {
    const std::string limit = std::to_string(open_file_limit_);
    argv.insert(argv.begin(), {"prlimit", "--nofile=" + limit + ":" + limit, "--"});
  }
  return StartDaemon(
      process_, argv, dir(), "serverd",
      [&] {
        auto check = Cli({"healthcheck"});
        return check.ok() && check->exit_code == 0;
      },
      std::chrono::seconds(20), ProcessOptions{.env = env_});
}

int ServerdProcess::Stop() {
  if (!process_) return -1;
  const int code = process_->Stop();
  return code;
}

void ServerdProcess::Kill() {
  if (process_) process_->Stop(9, std::chrono::milliseconds(0));
}

Result<ProcessOutput> ServerdProcess::Cli(std::vector<std::string> args) const {
  std::vector<std::string> argv = {Binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("-socketPath");
  argv.push_back(socket_path().string());
  return RunProcess(argv, {}, std::chrono::seconds(30));
}

ProcessOutput ServerdProcess::MustCli(std::vector<std::string> args) const {
  auto out = Cli(std::move(args));
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? *out : ProcessOutput{};
}

std::string ServerdProcess::NewJoinToken() const {
  // "Token: <value>\n"
  const ProcessOutput token = MustCli({"token", "generate"});
  EXPECT_EQ(token.exit_code, 0) << token.err;
  return token.out.size() > 8 ? token.out.substr(7, token.out.size() - 8) : "";
}

std::string ServerdProcess::logs() const {
  return process_ ? process_->stderr_text() + process_->stdout_text() : "";
}

}  // namespace sigil::testing
