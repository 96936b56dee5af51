// The frame of `serverd run` and `agentd run`: flags parsed, config loaded, logging set from
// it, the daemon's signals blocked, the daemon started, its log file reopened at each SIGHUP
// (or SIGUSR2, SPIRE's signal for it), and stopped at the first SIGINT or SIGTERM. And of
// `serverd validate` and `agentd validate`, which stop after the config is loaded.
//
// The signals are taken by sigwait on the main thread, which has nothing else to do while the
// daemon runs: reopening a file there needs none of the care a signal handler would, and no
// event loop of the daemon's is involved.
//
// Why here: both daemons share it and, by DESIGN.md's table, may share only core, hw and
// transport; of those only core is about neither keys nor sockets. It is a library of its own
// beside sigil_core, not part of it, because the domain library does no I/O and has no CLI11,
// while this parses a command line, writes to stdout and stderr and waits on signals.
//
// Thread safety: call RunDaemon from the main thread before any other thread is started, so
// that every thread inherits the blocked signals and the signal reaches sigwait.
#pragma once

#include <signal.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/cli/command_line.h"
#include "core/status.h"

namespace sigil {

// SIGINT, SIGTERM, SIGHUP and SIGUSR2 blocked in this thread and every thread started after, for
// WaitForStop; SIGPIPE ignored, so a peer that goes away mid-write is an error on its
// connection, not the end of the daemon.
class DaemonSignals {
 public:
  DaemonSignals();
  // Blocks until SIGINT or SIGTERM arrives and returns its number. Each SIGHUP or SIGUSR2
  // before it reopens the log file (ReopenLogFile, core/log.h) and is logged.
  int WaitForStop() const;

 private:
  sigset_t signals_;
};

// The steps of RunDaemon that are the same for every daemon type.
namespace daemon_frame {
// Prints "Error: <message>" for a config that could not be loaded; returns the exit code.
int ConfigFailed(const Status& status);
// Sets the log level and format the config names (the config's loader checked them) and, when
// `file` is not empty, sends the log there; the error names the file.
Status ConfigureLogging(const std::string& level, const std::string& format, const std::filesystem::path& file);
// Raises the soft limit on open files to the hard limit (systemd's soft default, 1024, is what
// a connection flood exhausts first) and logs both; a failure to raise is logged, not fatal.
void RaiseOpenFileLimit();
// Logs and prints why `name` could not start; returns the exit code.
int StartFailed(std::string_view name, const Status& status);
// Prints what `validate` found (SPIRE's words, on stdout when valid, else on stderr); returns
// the exit code.
int Validated(std::string_view name, const Status& status);
void LogStopping(int signal_number);
void LogStopped(std::string_view name);
}  // namespace daemon_frame

// Runs `Daemon` as a daemon named `name` ("serverd"). `flags` holds the `run` command's
// options, bound to what `load_config` reads; `args` follow "run". `load_config()` returns a
// Result<Config> whose Config has log_level, log_format and log_file; `Daemon` is made from
// that Config and has `Status Start()` and `void Stop()`. Returns the process's exit code.
template <typename Daemon, typename LoadConfig>
int RunDaemon(std::string_view name, CLI::App& flags, std::vector<std::string> args, const LoadConfig& load_config) {
  if (std::optional<int> exit_code = ParseCommandLine(flags, std::move(args), std::cout, std::cerr)) {
    return *exit_code;
  }
  auto config = load_config();
  if (!config.ok()) return daemon_frame::ConfigFailed(config.status());
  if (Status logging = daemon_frame::ConfigureLogging(config->log_level, config->log_format, config->log_file);
      !logging.ok()) {
    return daemon_frame::ConfigFailed(logging);
  }
  daemon_frame::RaiseOpenFileLimit();
  const DaemonSignals signals;
  Daemon daemon(std::move(*config));
  if (Status started = daemon.Start(); !started.ok()) return daemon_frame::StartFailed(name, started);
  daemon_frame::LogStopping(signals.WaitForStop());
  daemon.Stop();
  daemon_frame::LogStopped(name);
  return 0;
}

// `<name> validate`: parses the `run` command's flags into `flags` from `args` and checks the
// config `load_config()` loads, as RunDaemon would, then stops: no key store is opened, no
// socket bound, no file written. Returns the process's exit code (1 for an invalid config).
template <typename LoadConfig>
int ValidateConfig(std::string_view name, CLI::App& flags, std::vector<std::string> args,
                   const LoadConfig& load_config) {
  if (std::optional<int> exit_code = ParseCommandLine(flags, std::move(args), std::cout, std::cerr)) {
    return *exit_code;
  }
  return daemon_frame::Validated(name, load_config().status());
}

}  // namespace sigil
