// Test support: temporary folders, free loopback ports and child processes, for tests that
// start real components (SoftHSM2 tokens, swtpm, serverd, agentd, curl, python gRPC clients).
//
// Thread safety: each object is used by one thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace sigil::testing {

// A fresh folder under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "sigil-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// A TCP port on 127.0.0.1 that was free when asked (bound to port 0, then released).
// `consecutive` > 1 asks for that many free ports in a row (swtpm wants P and P+1).
int FreeLoopbackPort(int consecutive = 1);

struct ProcessOutput {
  int exit_code = -1;  // or 128 + signal number when killed by a signal
  std::string out;
  std::string err;
};

struct ProcessOptions {
  std::map<std::string, std::string> env;  // added to (and overriding) the test's environment
  std::optional<std::filesystem::path> cwd;
  std::string stdin_data;
};

// Runs argv[0] (looked up on PATH) to completion, capturing stdout and stderr.
// DeadlineExceeded (and the child killed) when it outlives `timeout`.
Result<ProcessOutput> RunProcess(const std::vector<std::string>& argv,
                                 const ProcessOptions& options = {},
                                 std::chrono::milliseconds timeout = std::chrono::seconds(60));

// A long-running child (a daemon under test). Output goes to files in `log_dir`, named after
// the program, so a failing test can print them. Stopped with SIGTERM (then SIGKILL after a
// grace period) on destruction.
class ChildProcess {
 public:
  static Result<ChildProcess> Start(const std::vector<std::string>& argv,
                                    const std::filesystem::path& log_dir,
                                    const ProcessOptions& options = {});
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  bool running();
  // Sends `signal` and waits up to `grace` for exit, then SIGKILL. Returns the exit code as
  // ProcessOutput::exit_code does.
  int Stop(int signal = 15, std::chrono::milliseconds grace = std::chrono::seconds(5));
  // Waits for exit without signalling; nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);

  std::string stdout_text() const;
  std::string stderr_text() const;

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::filesystem::path stdout_path_;
  std::filesystem::path stderr_path_;
};

// Starts a daemon and waits until `healthy` (its own `healthcheck` command) passes.
// Internal naming `name` with its logs when it exits first; DeadlineExceeded after `timeout`.
Status StartDaemon(std::optional<ChildProcess>& process, const std::vector<std::string>& argv,
                   const std::filesystem::path& log_dir, const std::string& name,
                   const std::function<bool()>& healthy, std::chrono::milliseconds timeout = std::chrono::seconds(20),
                   const ProcessOptions& options = {});

// Polls `ready` every 20 ms until it returns true or `timeout` passes.
template <typename Pred>
bool WaitUntil(Pred ready, std::chrono::milliseconds timeout = std::chrono::seconds(10));

// True once a TCP connect to 127.0.0.1:port succeeds.
bool LoopbackPortAccepts(int port);

std::string ReadFile(const std::filesystem::path& path);

// How many times `text` appears in `logs`, apart: the count of log lines holding it when it
// fits on one line.
inline size_t LinesWith(std::string_view logs, std::string_view text) {
  size_t count = 0;
  for (size_t at = logs.find(text); at != std::string_view::npos; at = logs.find(text, at + text.size())) ++count;
  return count;
}
void WriteFile(const std::filesystem::path& path, std::string_view contents);

template <typename Pred>
bool WaitUntil(Pred ready, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (ready()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    struct timespec ts = {0, 20'000'000};
    nanosleep(&ts, nullptr);
  }
}

}  // namespace sigil::testing
