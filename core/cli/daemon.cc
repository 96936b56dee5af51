#include "core/cli/daemon.h"

#include <sys/resource.h>

#include "core/log.h"

namespace sigil {

DaemonSignals::DaemonSignals() {
  sigemptyset(&signals_);
  for (int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGUSR2}) sigaddset(&signals_, signal_number);
  pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

int DaemonSignals::WaitForStop() const {
  while (true) {
    int signal_number = 0;
    sigwait(&signals_, &signal_number);
    if (signal_number != SIGHUP && signal_number != SIGUSR2) return signal_number;
    const Result<bool> reopened = ReopenLogFile();
    if (!reopened.ok()) {
      LogError("could not reopen the log file; logging on to the one open", {{"error", reopened.status().message()}});
    } else if (*reopened) {
      LogInfo("log file reopened", {{"signal", std::to_string(signal_number)}});
    }
  }
}

namespace daemon_frame {

int ConfigFailed(const Status& status) {
  std::cerr << "Error: " << status.message() << "\n";
  return 1;
}

Status ConfigureLogging(const std::string& level, const std::string& format, const std::filesystem::path& file) {
  ::sigil::ConfigureLogging(*ParseLogLevel(level), *ParseLogFormat(format));
  return file.empty() ? Status::Ok() : LogToFile(file);
}

void RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    const rlim_t before = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      LogWarn("could not raise the open-file limit", {{"soft", std::to_string(before)},
                                                       {"hard", std::to_string(limit.rlim_max)}});
      return;
    }
  }
  LogInfo("open-file limit", {{"soft", std::to_string(limit.rlim_cur)}, {"hard", std::to_string(limit.rlim_max)}});
}

int StartFailed(std::string_view name, const Status& status) {
  LogError(std::string(name) + " could not start", {{"error", status.ToString()}});
  std::cerr << "Error: " << status.ToString() << "\n";
  return 1;
}

int Validated(std::string_view name, const Status& status) {
  if (!status.ok()) {
    std::cerr << name << " configuration file is invalid: " << status.message() << "\n";
    return 1;
  }
  std::cout << name << " configuration file is valid.\n";
  return 0;
}

void LogStopping(int signal_number) { LogInfo("stopping", {{"signal", std::to_string(signal_number)}}); }

void LogStopped(std::string_view name) { LogInfo(std::string(name) + " stopped"); }

}  // namespace daemon_frame

}  // namespace sigil
