// serverd: `serverd run -config server.yaml`, and the admin commands that drive a running
// server over its socket (see cli.h).
#include <CLI/CLI.hpp>
#include <iostream>

#include "core/cli/command_line.h"
#include "core/cli/daemon.h"
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
  return RunDaemon<Server>("serverd", app, std::move(args),
                           [&] { return LoadServerConfig(config_path, overrides); });
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (PrintedVersion(args, std::cout)) return 0;
  if (!args.empty() && args[0] == "run") return Run({args.begin() + 1, args.end()});
  return RunAdminCommand(
      args,
      [](const std::string& socket_path) -> Result<std::unique_ptr<AdminClient>> {
        return std::unique_ptr<AdminClient>(std::make_unique<SocketAdminClient>(socket_path));
      },
      std::cout, std::cerr);
}
