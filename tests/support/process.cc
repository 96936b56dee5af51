#include "tests/support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

extern char** environ;

namespace sigil::testing {
namespace {

int ExitCodeOf(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

// The child's environment: ours, with `extra` added or replacing.
std::vector<std::string> MergedEnvironment(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    merged[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [k, v] : extra) merged[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : merged) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// posix_spawn with the given file actions; the child runs in `cwd` via a shell-free chdir
// wrapper when one is set (posix_spawn_file_actions_addchdir_np is a glibc extension).
Result<pid_t> Spawn(const std::vector<std::string>& argv, const ProcessOptions& options,
                    posix_spawn_file_actions_t* actions) {
  if (argv.empty()) return InvalidArgumentError("empty command line");
  std::vector<std::string> args = argv;
  std::vector<std::string> env = MergedEnvironment(options.env);
  if (options.cwd) {
    posix_spawn_file_actions_addchdir_np(actions, options.cwd->c_str());
  }
  auto c_args = CStrings(args);
  auto c_env = CStrings(env);
  pid_t pid = -1;
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Own process group, so a stop reaches everything the child started.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  int rc = posix_spawnp(&pid, c_args[0], actions, &attr, c_args.data(), c_env.data());
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return NotFoundError("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  return pid;
}

}  // namespace

TempDir::TempDir(std::string_view prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + std::string(prefix) +
                     "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::abort();  // no temporary folder: nothing a test can do
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

int FreeLoopbackPort(int consecutive) {
  static std::mt19937 rng(std::random_device{}());
  for (int attempt = 0; attempt < 200; ++attempt) {
    // Ports from the upper part of the range, away from the kernel's ephemeral range start.
    int base = 20000 + static_cast<int>(rng() % 30000);
    bool all_free = true;
    for (int i = 0; i < consecutive && all_free; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(base + i));
      all_free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
      close(fd);
    }
    if (all_free) return base;
  }
  std::abort();
}

bool LoopbackPortAccepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

Result<ProcessOutput> RunProcess(const std::vector<std::string>& argv,
                                 const ProcessOptions& options,
                                 std::chrono::milliseconds timeout) {
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 ||
      pipe2(err_pipe, O_CLOEXEC) != 0) {
    return InternalError(std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  auto pid = Spawn(argv, options, &actions);
  posix_spawn_file_actions_destroy(&actions);
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (!pid.ok()) {
    close(in_pipe[1]);
    close(out_pipe[0]);
    close(err_pipe[0]);
    return pid.status();
  }

  // Feed stdin and drain both outputs together so neither side blocks on a full pipe.
  ProcessOutput result;
  size_t in_written = 0;
  int in_fd = in_pipe[1];
  if (options.stdin_data.empty()) {
    close(in_fd);
    in_fd = -1;
  } else {
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
    signal(SIGPIPE, SIG_IGN);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool out_open = true, err_open = true, timed_out = false;
  while (out_open || err_open) {
    pollfd fds[3];
    int n = 0;
    if (out_open) fds[n++] = {out_pipe[0], POLLIN, 0};
    if (err_open) fds[n++] = {err_pipe[0], POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    if (poll(fds, n, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_fd) {
        ssize_t w = write(in_fd, options.stdin_data.data() + in_written,
                          options.stdin_data.size() - in_written);
        if (w > 0) in_written += static_cast<size_t>(w);
        if (w < 0 || in_written == options.stdin_data.size()) {
          close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      char buf[65536];
      ssize_t r = read(fds[i].fd, buf, sizeof(buf));
      bool is_out = fds[i].fd == out_pipe[0];
      if (r <= 0) {
        (is_out ? out_open : err_open) = false;
      } else {
        (is_out ? result.out : result.err).append(buf, static_cast<size_t>(r));
      }
    }
  }
  if (in_fd >= 0) close(in_fd);
  close(out_pipe[0]);
  close(err_pipe[0]);
  if (timed_out) kill(-*pid, SIGKILL);
  int status = 0;
  waitpid(*pid, &status, 0);
  if (timed_out) {
    return DeadlineExceededError(argv[0] + " did not finish within " +
                                 std::to_string(timeout.count()) + " ms; stderr: " + result.err);
  }
  result.exit_code = ExitCodeOf(status);
  return result;
}

Result<ChildProcess> ChildProcess::Start(const std::vector<std::string>& argv,
                                         const std::filesystem::path& log_dir,
                                         const ProcessOptions& options) {
  ChildProcess child;
  static int counter = 0;
  std::string base = std::filesystem::path(argv.empty() ? "child" : argv[0]).filename().string() +
                     "." + std::to_string(++counter);
  child.stdout_path_ = log_dir / (base + ".out");
  child.stderr_path_ = log_dir / (base + ".err");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, child.stdout_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, child.stderr_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  auto pid = Spawn(argv, options, &actions);
  posix_spawn_file_actions_destroy(&actions);
  if (!pid.ok()) return pid.status();
  child.pid_ = *pid;
  return child;
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      exit_code_(other.exit_code_),
      stdout_path_(std::move(other.stdout_path_)),
      stderr_path_(std::move(other.stderr_path_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !exit_code_) Stop();
    pid_ = std::exchange(other.pid_, -1);
    exit_code_ = other.exit_code_;
    stdout_path_ = std::move(other.stdout_path_);
    stderr_path_ = std::move(other.stderr_path_);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) Stop();
}

bool ChildProcess::running() {
  if (pid_ <= 0 || exit_code_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = ExitCodeOf(status);
    return false;
  }
  return true;
}

std::optional<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  if (!WaitUntil([&] { return !running(); }, timeout)) return std::nullopt;
  return exit_code_;
}

int ChildProcess::Stop(int sig, std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  if (exit_code_) return *exit_code_;
  kill(-pid_, sig);
  if (auto code = Wait(grace)) return *code;
  kill(-pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  exit_code_ = ExitCodeOf(status);
  return *exit_code_;
}

std::string ChildProcess::stdout_text() const { return ReadFile(stdout_path_); }
std::string ChildProcess::stderr_text() const { return ReadFile(stderr_path_); }

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::filesystem::path& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
}

Status StartDaemon(std::optional<ChildProcess>& process, const std::vector<std::string>& argv,
                   const std::filesystem::path& log_dir, const std::string& name,
                   const std::function<bool()>& healthy, std::chrono::milliseconds timeout,
                   const ProcessOptions& options) {
  SIGIL_ASSIGN_OR_RETURN(ChildProcess child, ChildProcess::Start(argv, log_dir, options));
  process.emplace(std::move(child));
  const bool passed = WaitUntil([&] { return !process->running() || healthy(); }, timeout);
  auto logs = [&] { return process->stderr_text() + process->stdout_text(); };
  if (!process->running()) return Status(Code::kInternal, name + " exited at start:\n" + logs());
  if (!passed) return Status(Code::kDeadlineExceeded, name + " did not become healthy:\n" + logs());
  return Status::Ok();
}

}  // namespace sigil::testing
