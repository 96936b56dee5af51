#include "tests/support/agentd_process.h"

#include <sys/stat.h>

#include <cctype>
#include <cstdlib>

namespace sigil::testing {

std::string AgentdProcess::Binary() {
  const char* path = std::getenv("SIGIL_AGENTD");
  return path != nullptr ? path : "agentd";
}

namespace {

std::string AgentYaml(const AgentdOptions& options, const AgentdProcess& agent) {
  return "agent:\n"
         "  trust_domain: " + options.trust_domain + "\n"
         "  server_address: 127.0.0.1\n"
         "  server_port: " + std::to_string(options.server_port) + "\n"
         "  socket_path: " + agent.socket_path().string() + "\n"
         "  data_dir: " + agent.data_dir().string() + "\n"
         "  trust_bundle_path: " + options.trust_bundle_path.string() + "\n"
         "  join_token: \"" + options.join_token + "\"\n"
         "  log_level: " + options.log_level + "\n" + options.extra_yaml + options.top_level_yaml;
}

// The same settings as SPIRE's conf/agent/agent.conf writes them, the log level in uppercase
// and the plugins SPIRE requires (a KeyManager, a NodeAttestor, a WorkloadAttestor).
std::string AgentConf(const AgentdOptions& options, const AgentdProcess& agent) {
  std::string level = options.log_level;
  for (char& c : level) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return "agent {\n"
         "    trust_domain = \"" + options.trust_domain + "\"\n"
         "    server_address = \"127.0.0.1\"\n"
         "    server_port = \"" + std::to_string(options.server_port) + "\"\n"
         "    socket_path = \"" + agent.socket_path().string() + "\"\n"
         "    data_dir = \"" + agent.data_dir().string() + "\"\n"
         "    trust_bundle_path = \"" + options.trust_bundle_path.string() + "\"\n"
         "    join_token = \"" + options.join_token + "\"\n"
         "    log_level = \"" + level + "\"\n"
         "}\n\n"
         "plugins {\n"
         "    NodeAttestor \"join_token\" {\n"
         "        plugin_data {}\n"
         "    }\n"
         "    KeyManager \"disk\" {\n"
         "        plugin_data {\n"
         "            directory = \"" + agent.data_dir().string() + "\"\n"
         "        }\n"
         "    }\n"
         "    WorkloadAttestor \"unix\" {\n"
         "        plugin_data {}\n"
         "    }\n"
         "}\n";
}

}  // namespace

Result<std::unique_ptr<AgentdProcess>> AgentdProcess::Create(AgentdOptions options) {
  auto agent = std::unique_ptr<AgentdProcess>(new AgentdProcess());
  agent->dir_ = std::make_unique<TempDir>("sigil-agentd");
  const auto& dir = agent->dir_->path();
  // Workloads under other uids must reach the socket, as they would in /tmp/sigil-agent/public.
  if (::chmod(dir.c_str(), 0755) != 0) return InternalError("chmod " + dir.string());
  if (options.spire_hcl && (!options.extra_yaml.empty() || !options.top_level_yaml.empty())) {
    return InvalidArgumentError("AgentdOptions: YAML text for an agent.conf written in HCL");
  }
  agent->config_path_ = dir / (options.spire_hcl ? "agent.conf" : "agent.yaml");
  agent->run_flags_ = options.run_flags;
  WriteFile(agent->config_path_, options.spire_hcl ? AgentConf(options, *agent) : AgentYaml(options, *agent));
  return agent;
}

Status AgentdProcess::Start() { return StartWaitingFor({"healthcheck"}); }

Status AgentdProcess::StartUnsynced() { return StartWaitingFor({"healthcheck", "--shallow"}); }

Status AgentdProcess::StartWaitingFor(const std::vector<std::string>& healthcheck) {
  if (process_) previous_logs_ += logs();
  ProcessOptions options;
  options.env = env_;
  std::vector<std::string> argv = {Binary(), "run", "-config", config_path_.string()};
  argv.insert(argv.end(), run_flags_.begin(), run_flags_.end());
  return StartDaemon(
      process_, argv, dir(), "agentd",
      [&] {
        auto check = Cli(healthcheck);
        return check.ok() && check->exit_code == 0;
      },
      std::chrono::seconds(20), options);
}

std::optional<int> AgentdProcess::WaitForExit(std::chrono::milliseconds timeout) {
  return process_ ? process_->Wait(timeout) : std::nullopt;
}

int AgentdProcess::Stop() { return process_ ? process_->Stop() : -1; }

void AgentdProcess::Kill() {
  if (process_) process_->Stop(9, std::chrono::milliseconds(0));
}

std::vector<std::string> AgentdProcess::CliArgv(std::vector<std::string> args, std::optional<uid_t> uid) const {
  std::vector<std::string> argv;
  if (uid) {
    const std::string id = std::to_string(*uid);
    argv = {"setpriv", "--reuid", id, "--regid", id, "--clear-groups"};
  }
  argv.push_back(Binary());
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("-socketPath");
  argv.push_back(socket_path().string());
  return argv;
}

Result<ProcessOutput> AgentdProcess::Cli(std::vector<std::string> args, std::optional<uid_t> uid) const {
  return RunProcess(CliArgv(std::move(args), uid), {}, std::chrono::seconds(30));
}

std::string AgentdProcess::logs() const {
  return previous_logs_ + (process_ ? process_->stderr_text() + process_->stdout_text() : "");
}

}  // namespace sigil::testing
