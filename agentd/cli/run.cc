#include "agentd/cli/run.h"

#include <malloc.h>

#include <CLI/CLI.hpp>

#include "agentd/agent.h"
#include "core/cli/daemon.h"

namespace sigil::agentd {

namespace {

// glibc's defaults suit a short program, not an agent that lives for months and now and then
// builds a Workload API message of megabytes: after the first large buffer is freed it raises
// its mmap threshold to that size, so later ones come from the heap and their pages are kept
// when freed; it keeps up to 128 KiB free at the top of the heap, padded by as much again; and
// each thread that allocates may get an arena of its own that is never given back. Fixed
// thresholds return large buffers to the system when freed, a smaller top is given back sooner,
// and one arena serves the agent's few threads (their small allocations come from per-thread
// caches, so they seldom meet on its lock). Agent memory per cached X509-SVID, five runs of
// propagation_bench each: 2,190-2,380 B with two arenas and a 256 KiB trim threshold,
// 2,040-2,200 B with two arenas and these thresholds, 1,900-1,980 B as set here.
void KeepTheHeapSmall() {
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 64 * 1024);
  mallopt(M_TOP_PAD, 16 * 1024);
  mallopt(M_ARENA_MAX, 1);
}

// The flags of `agentd run`, which `agentd validate` takes too, as SPIRE's commands do.
struct RunFlags {
  std::string config_path = "/etc/sigil/agent.yaml";
  AgentFlagOverrides overrides;

  void AddTo(CLI::App& app) {
    app.add_option("--config", config_path, "Path to the agent's config file: YAML, or SPIRE's agent.conf (HCL)");
    app.add_flag("--expandEnv", overrides.expand_env, "Replace $VAR and ${VAR} in the config file by the environment's values");
    app.add_option("--joinToken", overrides.join_token, "A join token made by `serverd token generate`");
    app.add_option("--joinTokenFile", overrides.join_token_file, "Path to a file holding the join token");
    app.add_option("--trustBundle", overrides.trust_bundle_path, "Path to serverd's CA bundle (PEM)");
    app.add_option("--trustDomain", overrides.trust_domain, "The trust domain this agent belongs to");
    app.add_option("--serverAddress", overrides.server_address, "IP address or DNS name of serverd");
    app.add_option("--serverPort", overrides.server_port, "Port of serverd's agent API");
    app.add_option("--socketPath", overrides.socket_path, "Path of the Workload API socket");
    app.add_option("--dataDir", overrides.data_dir, "Folder for the agent's state");
    app.add_option("--logLevel", overrides.log_level, "debug, info, warn or error");
    app.add_option("--logFormat", overrides.log_format, "text or json");
    app.add_option("--logFile", overrides.log_file, "File to append the log to instead of stderr; reopened on SIGHUP");
  }
  Result<AgentConfig> Load() const { return LoadAgentConfig(config_path, overrides); }
};

}  // namespace

int RunAgent(std::vector<std::string> args) {
  KeepTheHeapSmall();
  CLI::App app{"Run the Sigil agent", "agentd run"};
  RunFlags flags;
  flags.AddTo(app);
  return RunDaemon<Agent>("agentd", app, std::move(args), [&] { return flags.Load(); });
}

int ValidateAgent(std::vector<std::string> args) {
  CLI::App app{"Check the agent's config file without starting the agent", "agentd validate"};
  RunFlags flags;
  flags.AddTo(app);
  return ValidateConfig("agentd", app, std::move(args), [&] { return flags.Load(); });
}

}  // namespace sigil::agentd
