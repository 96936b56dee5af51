// serverd: `serverd run -config server.yaml` (or SPIRE's server.conf), `serverd validate` with
// the same flags, and the admin commands that drive a running server over its socket (see cli.h).
#include <CLI/CLI.hpp>
#include <iostream>
#include <sstream>
#include <string_view>

#include "core/cli/command_line.h"
#include "core/cli/daemon.h"
#include "serverd/admin/admin_server.h"
#include "serverd/admin/cli.h"
#include "serverd/server.h"

namespace {

using namespace sigil;
using namespace sigil::serverd;

// The flags of `serverd run`, which `serverd validate` takes too, as SPIRE's commands do.
struct RunFlags {
  std::string config_path = "/etc/sigil/server.yaml";
  ServerFlagOverrides overrides;

  void AddTo(CLI::App& app) {
    app.add_option("--config", config_path, "Path to the server's config file: YAML, or SPIRE's server.conf (HCL)");
    app.add_flag("--expandEnv", overrides.expand_env, "Replace $VAR and ${VAR} in the config file by the environment's values");
    app.add_option("--trustDomain", overrides.trust_domain, "The trust domain this server belongs to");
    app.add_option("--bindAddress", overrides.bind_address, "IP address the agent API listens on");
    app.add_option("--serverPort", overrides.bind_port, "Port the agent API listens on");
    app.add_option("--socketPath", overrides.socket_path, "Path of the admin API socket");
    app.add_option("--dataDir", overrides.data_dir, "Folder for the server's state");
    app.add_option("--logLevel", overrides.log_level, "debug, info, warn or error");
    app.add_option("--logFormat", overrides.log_format, "text or json");
    app.add_option("--logFile", overrides.log_file, "File to append the log to instead of stderr; reopened on SIGHUP");
  }
  Result<ServerConfig> Load() const { return LoadServerConfig(config_path, overrides); }
};

int Run(std::vector<std::string> args) {
  CLI::App app{"Run the Sigil server", "serverd run"};
  RunFlags flags;
  flags.AddTo(app);
  return RunDaemon<Server>("serverd", app, std::move(args), [&] { return flags.Load(); });
}

int Validate(std::vector<std::string> args) {
  CLI::App app{"Check the server's config file without starting the server", "serverd validate"};
  RunFlags flags;
  flags.AddTo(app);
  return ValidateConfig("serverd", app, std::move(args), [&] { return flags.Load(); });
}

int RunAdmin(const std::vector<std::string>& args, std::ostream& out) {
  return RunAdminCommand(
      args,
      [](const std::string& socket_path) -> Result<std::unique_ptr<AdminClient>> {
        return std::unique_ptr<AdminClient>(std::make_unique<SocketAdminClient>(socket_path));
      },
      out, std::cerr);
}

// `serverd -h`: the admin commands' help, which lists what that parser knows, with run and
// validate, which main dispatches before it, listed first among the subcommands.
int PrintTopLevelHelp() {
  std::ostringstream admin_help;
  const int exit_code = RunAdmin({"-h"}, admin_help);
  std::string help = admin_help.str();
  constexpr std::string_view kSubcommands = "Subcommands:\n";
  if (const size_t at = help.find(kSubcommands); at != std::string::npos) {
    help.insert(at + kSubcommands.size(),
                "  run                         Run the server (serverd run -h for its flags)\n"
                "  validate                    Check the server's config file without starting it\n");
  }
  std::cout << help;
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (PrintedVersion(args, std::cout)) return 0;
  if (!args.empty() && args[0] == "run") return Run({args.begin() + 1, args.end()});
  if (!args.empty() && args[0] == "validate") return Validate({args.begin() + 1, args.end()});
  if (args.size() == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help")) return PrintTopLevelHelp();
  return RunAdmin(args, std::cout);
}
