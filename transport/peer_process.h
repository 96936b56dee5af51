// The process at the other end of a Unix connection, held from the moment the connection was
// accepted, so that what a later call is told about "the caller" is about that process and
// the binary it ran then.
//
// SO_PEERCRED names the process that called connect(). A connection outlives that moment: the
// process may exec another binary, fork and hand the socket to its child, or exit and have its
// pid reused. A PeerProcess closes what Linux lets a server close:
//  - the process is held by its open /proc/<pid> directory (a pidfd to pidfd_send_signal), so
//    a pid reused by another process is never taken for it;
//  - the binary it runs is stat'ed when it is held; a call after an exec to another file is
//    refused;
//  - on a listener that asks for it (SO_PASSCRED), the kernel stamps every write with the pid
//    of the process that wrote it, and bytes written by any process other than the one that
//    connected mark the connection: a child relaying for its parent is refused.
// What remains open: a process that writes its whole request, then execs a binary that an
// entry selects before the server has accepted the connection, while a child it forked reads
// the answer. Nothing the kernel keeps tells the server what ran before the accept. Selectors
// that pin the uid (unix:uid, unix:gid) alongside the binary are not open to it.
//
// Thread safety: the process and binary checks may run on any thread; NoteWriter runs on the
// connection's loop, foreign_writer on any thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/status.h"

struct stat;

namespace sigil::transport {

class PeerProcess {
 public:
  // The binary as stat sees it through /proc/<pid>/exe: what changes when the process execs
  // another file or the file is replaced, and its ctime, which moves when it is renamed or
  // linked.
  using ExecutableKey = std::tuple<dev_t, ino_t, int64_t /*mtime ns*/, int64_t /*ctime ns*/, off_t /*size*/>;
  static ExecutableKey KeyOf(const struct stat& st);
  // What stat says of the binary a process runs, through its open /proc directory.
  static std::optional<ExecutableKey> ExecutableOf(int proc_dir);
  // Whether a process runs the very file it ran: an exec changes the file (device and inode),
  // and an inode number reused by a later file shows in its mtime. A running binary cannot be
  // written; its ctime and size are left out, since a package upgrade that renames a new file
  // over it moves its ctime while the process still runs the old one.
  static bool SameFile(const std::optional<ExecutableKey>& now, const ExecutableKey& then);

  // Opens /proc/<pid> and stats the binary the process runs now. Pinned() says whether that
  // worked.
  static std::shared_ptr<PeerProcess> Hold(pid_t pid);
  ~PeerProcess();
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;

  pid_t pid() const { return pid_; }
  // The held /proc/<pid> directory: read every file of the process through it.
  int directory() const { return fd_; }
  // The binary when the process was held; nullopt when it could not be stat'ed (another
  // user's process when this one is not root).
  const std::optional<ExecutableKey>& executable_when_held() const { return executable_; }

  // NotFound when the process could not be held.
  Status Pinned() const;
  // Whether the process held is still there (its pid may name another one once it is not).
  bool StillThere() const;

  // Ok while this is still the process that connected, running the binary it ran then, and
  // nobody else wrote to its connection; PermissionDenied saying which of these failed.
  // `binary_now`, when given, gets what stat said of the binary in this check (nullopt when it
  // was not stat'ed), for the checks of the same call that need it again.
  Status StillTheCaller(std::optional<ExecutableKey>* binary_now = nullptr) const;

  // StillTheCaller of many holds at once, in their order: the holds of one process share one
  // stat of its binary. A stat costs several microseconds and runs on every call, while a
  // process with many connections has calls on several of them in one turn of a loop. Two holds
  // of a pid hold one process when one was opened before the other, and a stat through the
  // earlier succeeds after the later was opened: a pid names one process at a time, and a
  // process never comes back. The answer is as sound as StillTheCaller's, for calls whose
  // requests were read before this is called.
  struct CallerCheck {
    Status status;
    std::optional<ExecutableKey> binary_now;  // as StillTheCaller's
  };
  static std::vector<CallerCheck> StillTheCallers(const std::vector<const PeerProcess*>& holds);

  // A write to the connection came from process `writer` (the kernel's SCM_CREDENTIALS).
  void NoteWriter(pid_t writer, uid_t uid);
  struct Writer {
    pid_t pid;
    uid_t uid;
  };
  // The first process other than the connecting one that wrote to the connection.
  std::optional<Writer> foreign_writer() const;

 private:
  explicit PeerProcess(pid_t pid);
  static bool SignalsByDescriptor();
  // A point in the order of every hold's opening and every shared stat (StillTheCallers).
  static uint64_t NextMoment();
  // What stat says of the binary now, when there is a binary to compare with.
  std::optional<ExecutableKey> ExecutableNow() const;
  // StillTheCaller, given `now`: what a stat through this hold, or through one proven to hold
  // the same process, said of its binary.
  Status CallerVerdict(const std::optional<ExecutableKey>& now, std::optional<ExecutableKey>* binary_now) const;

  const pid_t pid_;
  const uint64_t opened_after_ = NextMoment();  // /proc/<pid> was opened between these two
  const int fd_;
  const uint64_t opened_before_ = NextMoment();
  std::optional<ExecutableKey> executable_;
  Result<std::string> start_time_ = NotFoundError("no start time read");
  std::atomic<bool> foreign_written_{false};
  std::atomic<pid_t> foreign_pid_{0};
  std::atomic<uid_t> foreign_uid_{0};
};

// Field 22 of /proc/<pid>/stat, read through the process's open /proc directory: when it
// started, in clock ticks since boot. A pid with the same start time is the same process.
Result<std::string> ProcessStartTime(pid_t pid, int proc_dir);

// Opens `leaf` under an open /proc/<pid> directory, read-only; -1 and errno as open(2).
int OpenProcFile(int proc_dir, const char* leaf);

// A whole file under an open /proc/<pid> directory, with plain openat and read: this runs on
// every Workload API call, and a stream's buffers and locale cost more than the read itself.
std::optional<std::string> ReadProcFile(int proc_dir, const char* leaf);

}  // namespace sigil::transport
