#include "transport/peer_process.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <utility>
#include <string_view>

namespace sigil::transport {

int OpenProcFile(int proc_dir, const char* leaf) {
  // open(2) of the held directory's own /proc/self/fd link resolves to that very directory, as
  // openat(2) would; ThreadSanitizer does not see openat, and takes a descriptor it opened for
  // one whose number another thread closed before, reporting races that are none.
  const std::string path = "/proc/self/fd/" + std::to_string(proc_dir) + "/" + leaf;
  return ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
}

std::optional<std::string> ReadProcFile(int proc_dir, const char* leaf) {
  const int fd = OpenProcFile(proc_dir, leaf);
  if (fd < 0) return std::nullopt;
  std::string content;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) content.append(buffer, static_cast<size_t>(n));
  ::close(fd);
  if (n < 0) return std::nullopt;
  return content;
}

Result<std::string> ProcessStartTime(pid_t pid, int proc_dir) {
  const auto gone = [pid] { return NotFoundError("process " + std::to_string(pid) + " is gone"); };
  const auto stat = ReadProcFile(proc_dir, "stat");
  if (!stat) return gone();
  // The command name (field 2) may hold spaces and ')' — fields 3 on follow its last ')'.
  const size_t close = stat->rfind(')');
  if (close == std::string::npos) return gone();
  std::string_view rest = std::string_view(*stat).substr(close + 1);
  for (int field = 3; field <= 22; ++field) {
    rest.remove_prefix(std::min(rest.find_first_not_of(' '), rest.size()));
    const size_t end = std::min(rest.find(' '), rest.size());
    if (field == 22) return std::string(rest.substr(0, end));
    rest.remove_prefix(end);
  }
  return gone();
}

PeerProcess::ExecutableKey PeerProcess::KeyOf(const struct stat& st) {
  const auto nanoseconds = [](const timespec& t) { return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec; };
  return ExecutableKey{st.st_dev, st.st_ino, nanoseconds(st.st_mtim), nanoseconds(st.st_ctim), st.st_size};
}

std::optional<PeerProcess::ExecutableKey> PeerProcess::ExecutableOf(int proc_dir) {
  // stat follows the link to the file the process runs, without opening it.
  struct stat st {};
  if (::fstatat(proc_dir, "exe", &st, 0) != 0) return std::nullopt;
  return KeyOf(st);
}

bool PeerProcess::SameFile(const std::optional<ExecutableKey>& now, const ExecutableKey& then) {
  return now && std::get<0>(*now) == std::get<0>(then) && std::get<1>(*now) == std::get<1>(then) &&
         std::get<2>(*now) == std::get<2>(then);
}

// The hold is an open /proc/<pid> directory, which pidfd_send_signal takes as a pidfd (Linux
// 5.1 on); it is opened with open(2) rather than pidfd_open(2), which ThreadSanitizer cannot
// see, so that it knows whose descriptor this is. Older kernels: the start time in
// /proc/<pid>/stat, read when held and again when asked, tells the same.
PeerProcess::PeerProcess(pid_t pid)
    : pid_(pid), fd_(::open(("/proc/" + std::to_string(pid)).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
  if (fd_ < 0) return;
  if (!SignalsByDescriptor()) start_time_ = ProcessStartTime(pid, fd_);
  executable_ = ExecutableOf(fd_);
}

std::shared_ptr<PeerProcess> PeerProcess::Hold(pid_t pid) { return std::shared_ptr<PeerProcess>(new PeerProcess(pid)); }

PeerProcess::~PeerProcess() {
  if (fd_ >= 0) ::close(fd_);
}

bool PeerProcess::SignalsByDescriptor() {
  static const bool supported = [] {
    const int self = ::open("/proc/self", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const bool ok = self >= 0 && (::syscall(SYS_pidfd_send_signal, self, 0, nullptr, 0) == 0 || errno != ENOSYS);
    if (self >= 0) ::close(self);
    return ok;
  }();
  return supported;
}

Status PeerProcess::Pinned() const {
  if (fd_ >= 0 && (SignalsByDescriptor() || start_time_.ok())) return Status::Ok();
  return NotFoundError("process " + std::to_string(pid_) + " is gone");
}

bool PeerProcess::StillThere() const {
  if (fd_ < 0) return false;
  if (SignalsByDescriptor()) {
    // Signal 0 only asks whether the process is there; EPERM (another user's) says it is.
    return ::syscall(SYS_pidfd_send_signal, fd_, 0, nullptr, 0) == 0 || errno == EPERM;
  }
  const auto now = ProcessStartTime(pid_, fd_);
  return start_time_.ok() && now.ok() && *now == *start_time_;
}

uint64_t PeerProcess::NextMoment() {
  static std::atomic<uint64_t> moments{0};
  return moments.fetch_add(1) + 1;
}

std::optional<PeerProcess::ExecutableKey> PeerProcess::ExecutableNow() const {
  if (!executable_ || !Pinned().ok()) return std::nullopt;
  return ExecutableOf(fd_);
}

Status PeerProcess::StillTheCaller(std::optional<ExecutableKey>* binary_now) const {
  // This runs on every Workload API call: one stat answers both questions. A stat through the
  // held directory succeeds only while that very process runs (the directory stays bound to
  // it; once it has exited, even as a zombie, or its pid names another, "exe" resolves to
  // nothing), so no signal needs asking whether it is there.
  return CallerVerdict(ExecutableNow(), binary_now);
}

std::vector<PeerProcess::CallerCheck> PeerProcess::StillTheCallers(const std::vector<const PeerProcess*>& holds) {
  std::vector<size_t> order(holds.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::ranges::sort(order, [&](size_t a, size_t b) {
    return std::pair(holds[a]->pid_, holds[a]->opened_after_) < std::pair(holds[b]->pid_, holds[b]->opened_after_);
  });
  std::vector<CallerCheck> checks(holds.size());
  for (size_t first = 0; first < order.size();) {
    size_t end = first;
    while (end < order.size() && holds[order[end]]->pid_ == holds[order[first]]->pid_) ++end;
    // The earliest hold of this pid that has a binary to stat stats it for the others.
    const PeerProcess* earliest = nullptr;
    for (size_t i = first; i < end && earliest == nullptr; ++i) {
      if (holds[order[i]]->executable_ && holds[order[i]]->fd_ >= 0) earliest = holds[order[i]];
    }
    const uint64_t stat_after = NextMoment();
    const std::optional<ExecutableKey> now = earliest ? earliest->ExecutableNow() : std::nullopt;
    for (size_t i = first; i < end; ++i) {
      const PeerProcess& hold = *holds[order[i]];
      const bool same_process = &hold == earliest || (now && earliest->opened_before_ < hold.opened_after_ &&
                                                      hold.opened_before_ < stat_after);
      CallerCheck& check = checks[order[i]];
      check.status = hold.CallerVerdict(same_process ? now : hold.ExecutableNow(), &check.binary_now);
    }
    first = end;
  }
  return checks;
}

Status PeerProcess::CallerVerdict(const std::optional<ExecutableKey>& now,
                                  std::optional<ExecutableKey>* binary_now) const {
  const std::string process = "process " + std::to_string(pid_);
  if (auto writer = foreign_writer()) {
    return PermissionDeniedError("the connection of " + process + " was written to by process " +
                                 std::to_string(writer->pid) + " (uid " + std::to_string(writer->uid) +
                                 "); a connection is answered only for the process that opened it");
  }
  const auto exited = [&] { return PermissionDeniedError(process + ", which opened the connection, has exited"); };
  if (!Pinned().ok()) return exited();
  // A process whose binary could not be stat'ed when held is left to the attestors, which
  // cannot read it either and so give it no selector that names a binary.
  if (!executable_) {
    if (binary_now) binary_now->reset();
    return StillThere() ? Status::Ok() : exited();
  }
  if (!SameFile(now, *executable_)) {
    if (!now && !StillThere()) return exited();
    return PermissionDeniedError(process + " runs another binary than when it opened the connection (exec)");
  }
  if (binary_now) *binary_now = now;
  return Status::Ok();
}

void PeerProcess::NoteWriter(pid_t writer, uid_t uid) {
  if (writer == pid_ || foreign_written_.load(std::memory_order_relaxed)) return;
  foreign_pid_.store(writer, std::memory_order_relaxed);
  foreign_uid_.store(uid, std::memory_order_relaxed);
  foreign_written_.store(true, std::memory_order_release);
}

std::optional<PeerProcess::Writer> PeerProcess::foreign_writer() const {
  if (!foreign_written_.load(std::memory_order_acquire)) return std::nullopt;
  return Writer{foreign_pid_.load(std::memory_order_relaxed), foreign_uid_.load(std::memory_order_relaxed)};
}

}  // namespace sigil::transport
