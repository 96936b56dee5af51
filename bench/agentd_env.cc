#include "bench/agentd_env.h"

#include <unistd.h>

#include "core/trust_bundle.h"

namespace sigil::bench {

Result<std::unique_ptr<AgentdEnv>> AgentdEnv::Start(const std::string& extra_yaml, const std::string& top_level_yaml) {
  auto env = std::unique_ptr<AgentdEnv>(new AgentdEnv());
  SIGIL_ASSIGN_OR_RETURN(env->server_, BenchServer::Start({}, env->dir_.path()));
  SIGIL_RETURN_IF_ERROR(env->StartAgent(extra_yaml, top_level_yaml));
  return env;
}

Result<std::unique_ptr<AgentdEnv>> AgentdEnv::StartOn(std::unique_ptr<BenchServer> server, const std::string& extra_yaml,
                                                      const std::string& top_level_yaml) {
  auto env = std::unique_ptr<AgentdEnv>(new AgentdEnv());
  env->server_ = std::move(server);
  SIGIL_RETURN_IF_ERROR(env->StartAgent(extra_yaml, top_level_yaml));
  return env;
}

Status AgentdEnv::StartAgent(const std::string& extra_yaml, const std::string& top_level_yaml) {
  // The agent runs as its own process; it finds the binary as the tests do.
  ::setenv("SIGIL_AGENTD", SIGIL_AGENTD_BINARY, 0);
  SIGIL_ASSIGN_OR_RETURN(std::string token, server_->NewJoinToken());
  SIGIL_ASSIGN_OR_RETURN(X509Bundle bundle, server_->Bundle());
  SIGIL_ASSIGN_OR_RETURN(std::string pem, X509BundleToPem(bundle));
  testing::WriteFile(dir_.path() / "bundle.pem", pem);
  agent_id_ = "spiffe://" + server_->trust_domain().name() + "/spire/agent/join_token/" + token;

  testing::AgentdOptions options;
  options.trust_domain = server_->trust_domain().name();
  options.server_port = server_->agent_port();
  options.join_token = token;
  options.trust_bundle_path = dir_.path() / "bundle.pem";
  options.log_level = "warn";
  options.extra_yaml = extra_yaml;
  options.top_level_yaml = top_level_yaml;
  SIGIL_ASSIGN_OR_RETURN(agent_, testing::AgentdProcess::Create(options));
  return agent_->Start();
}

AgentdEnv::~AgentdEnv() {
  if (agent_) agent_->Stop();
}

pid_t AgentdEnv::agent_pid() const { return agent_->pid(); }

RegistrationEntry AgentdEnv::Entry(const std::string& path) const {
  RegistrationEntry entry = WorkloadEntry(server_->trust_domain(), path, agent_id_);
  entry.selectors = {{"unix", "uid:" + std::to_string(::getuid())}};
  return entry;
}

}  // namespace sigil::bench
