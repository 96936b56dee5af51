// The workload side of the bench: an in-process serverd (BenchServer) and a real `agentd run`
// attested to it with a join token, its Workload API on a Unix socket in a temporary folder.
// Entries made here select this process's uid, so the bench program itself is the workload.
//
// Thread safety: one thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bench/bench_server.h"
#include "tests/support/agentd_process.h"
#include "tests/support/process.h"

namespace sigil::bench {

class AgentdEnv {
 public:
  // `extra_yaml` goes under `agent:`, `top_level_yaml` at the end (workload_api_limits:, ...).
  static Result<std::unique_ptr<AgentdEnv>> Start(const std::string& extra_yaml = "",
                                                  const std::string& top_level_yaml = "");
  // The same, the agent attested to `server` (one replica of several, say), which it keeps.
  static Result<std::unique_ptr<AgentdEnv>> StartOn(std::unique_ptr<BenchServer> server,
                                                    const std::string& extra_yaml = "",
                                                    const std::string& top_level_yaml = "");
  ~AgentdEnv();

  BenchServer& server() { return *server_; }
  testing::AgentdProcess& agent() { return *agent_; }
  const std::string& agent_id() const { return agent_id_; }
  std::string socket_path() const { return agent_->socket_path().string(); }
  pid_t agent_pid() const;

  // An entry for this process's uid, parented to the agent.
  RegistrationEntry Entry(const std::string& path) const;

 private:
  AgentdEnv() = default;
  Status StartAgent(const std::string& extra_yaml, const std::string& top_level_yaml);
  testing::TempDir dir_{"sigil-agentd-bench"};
  std::unique_ptr<BenchServer> server_;
  std::unique_ptr<testing::AgentdProcess> agent_;
  std::string agent_id_;
};

}  // namespace sigil::bench
