#include "hw/durable_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "core/file.h"
#include "core/log.h"

namespace sigil::hw {

namespace {

// Whether SIGIL_FAULT_POINT names `fault` followed by `point` ("agent-svid" "-before-rename").
bool FaultPointChosen(std::string_view fault, std::string_view point) {
  static const char* const chosen = std::getenv("SIGIL_FAULT_POINT");
  return chosen != nullptr && !fault.empty() && std::string_view(chosen) == std::string(fault) + std::string(point);
}

void CrashAtFaultPoint(std::string_view fault, std::string_view point) {
  if (!FaultPointChosen(fault, point)) return;
  LogError("fault injected: killing the process", {{"fault_point", std::string(fault) + std::string(point)}});
  ::kill(::getpid(), SIGKILL);
}

Status WriteAll(int fd, std::span<const uint8_t> contents) {
  while (!contents.empty()) {
    const ssize_t written = ::write(fd, contents.data(), contents.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return ErrnoError(Code::kInternal, "write");
    contents = contents.subspan(static_cast<size_t>(written));
  }
  return ::fsync(fd) == 0 ? Status::Ok() : ErrnoError(Code::kInternal, "fsync");
}

}  // namespace

Status SyncDirectory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(Code::kInternal, "opening directory " + dir.string() + " to sync it");
  const bool synced = ::fsync(fd) == 0;
  const Status status = synced ? Status::Ok() : ErrnoError(Code::kInternal, "syncing directory " + dir.string());
  ::close(fd);
  return status;
}

Status WriteFileDurably(const std::filesystem::path& path, std::span<const uint8_t> contents, mode_t mode,
                        std::string_view what, std::string_view fault) {
  const std::filesystem::path temp = path.string() + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return ErrnoError(Code::kInternal, "creating " + std::string(what) + " " + temp.string());
  Status written = WriteAll(fd, contents);
  ::close(fd);
  if (!written.ok()) {
    ::unlink(temp.c_str());
    return written.AddContext("writing " + std::string(what) + " " + temp.string());
  }
  CrashAtFaultPoint(fault, "-before-rename");
  const bool renamed = FaultPointChosen(fault, "-rename-fails")
                           ? (errno = EIO, false)
                           : ::rename(temp.c_str(), path.c_str()) == 0;
  if (!renamed) {
    const Status failed = ErrnoError(Code::kInternal, "renaming " + std::string(what) + " into " + path.string());
    ::unlink(temp.c_str());
    return failed;
  }
  CrashAtFaultPoint(fault, "-after-rename");
  return SyncDirectory(path.parent_path());
}

Status RemoveFilesDurably(const std::filesystem::path& dir, std::span<const std::filesystem::path> paths) {
  bool removed = false;
  for (const auto& path : paths) {
    if (::unlink(path.c_str()) == 0) {
      removed = true;
    } else if (errno != ENOENT) {
      return ErrnoError(Code::kInternal, "removing " + path.string());
    }
  }
  return removed ? SyncDirectory(dir) : Status::Ok();
}

}  // namespace sigil::hw
