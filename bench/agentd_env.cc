#include "bench/agentd_env.h"

#include <unistd.h>

#include "core/trust_bundle.h"

namespace sigil::bench {

Result<std::unique_ptr<AgentdEnv>> AgentdEnv::Start(const std::string& extra_yaml, const std::string& top_level_yaml) {
  auto env = std::unique_ptr<AgentdEnv>(new AgentdEnv());
  // The agent runs as its own process; it finds the binary as the tests do.
  ::setenv("SIGIL_AGENTD", SIGIL_AGENTD_BINARY, 0);
  SIGIL_ASSIGN_OR_RETURN(env->server_, BenchServer::Start({}, env->dir_.path()));
  SIGIL_ASSIGN_OR_RETURN(std::string token, env->server_->NewJoinToken());
  SIGIL_ASSIGN_OR_RETURN(X509Bundle bundle, env->server_->Bundle());
  SIGIL_ASSIGN_OR_RETURN(std::string pem, X509BundleToPem(bundle));
  testing::WriteFile(env->dir_.path() / "bundle.pem", pem);
  env->agent_id_ = "spiffe://" + env->server_->trust_domain().name() + "/spire/agent/join_token/" + token;

  testing::AgentdOptions options;
  options.trust_domain = env->server_->trust_domain().name();
  options.server_port = env->server_->agent_port();
  options.join_token = token;
  options.trust_bundle_path = env->dir_.path() / "bundle.pem";
  options.log_level = "warn";
  options.extra_yaml = extra_yaml;
  options.top_level_yaml = top_level_yaml;
  SIGIL_ASSIGN_OR_RETURN(env->agent_, testing::AgentdProcess::Create(options));
  SIGIL_RETURN_IF_ERROR(env->agent_->Start());
  return env;
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
