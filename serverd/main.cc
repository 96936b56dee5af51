// serverd: `serverd run -config server.yaml`, and the admin commands that drive a running
// server over its socket (see cli.h).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "core/cli_args.h"
#include "core/log.h"
#include "serverd/admin/admin_server.h"
#include "serverd/admin/cli.h"
#include "serverd/server.h"

namespace {

using namespace sigil;
using namespace sigil::serverd;

int Run(std::vector<std::string> args) {
  CLI::App app{"Run the Sigil server", "serverd run"};
  std::string config_path = "/etc/sigil/server.yaml";
  ServerFlagOverrides overrides;
  app.add_option("--config", config_path, "Path to the server's YAML config file");
  app.add_option("--trustDomain", overrides.trust_domain, "The trust domain this server belongs to");
  app.add_option("--bindAddress", overrides.bind_address, "IP address the agent API listens on");
  app.add_option("--serverPort", overrides.bind_port, "Port the agent API listens on");
  app.add_option("--socketPath", overrides.socket_path, "Path of the admin API socket");
  app.add_option("--dataDir", overrides.data_dir, "Folder for the server's state");
  app.add_option("--logLevel", overrides.log_level, "debug, info, warn or error");
  args = NormalizeGoStyleFlags(std::move(args));
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << "Error: " << e.what() << "\n";
    return 1;
  }
  auto config = LoadServerConfig(config_path, overrides);
  if (!config.ok()) {
    std::cerr << "Error: " << config.status().message() << "\n";
    return 1;
  }
  ConfigureLogging(*ParseLogLevel(config->log_level), *ParseLogFormat(config->log_format));

  // Signals are taken by sigwait below; every thread started from here inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  Server server(std::move(*config));
  if (Status started = server.Start(); !started.ok()) {
    LogError("serverd could not start", {{"error", started.ToString()}});
    std::cerr << "Error: " << started.ToString() << "\n";
    return 1;
  }
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  LogInfo("stopping", {{"signal", std::to_string(signal_number)}});
  server.Stop();
  LogInfo("serverd stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "run") return Run({args.begin() + 1, args.end()});
  return RunAdminCommand(
      args,
      [](const std::string& socket_path) -> Result<std::unique_ptr<AdminClient>> {
        return std::unique_ptr<AdminClient>(std::make_unique<SocketAdminClient>(socket_path));
      },
      std::cout, std::cerr);
}
