#include "transport/owned_directory.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace sigil::transport {
namespace {

namespace fs = std::filesystem;

std::string Octal(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Why a directory (or a link) on the way cannot be trusted, with the fix; empty when it can.
std::string Distrust(const fs::path& path, const struct stat& st) {
  const uid_t self = ::geteuid();
  if (st.st_uid != 0 && st.st_uid != self) {
    return path.string() + " is owned by uid " + std::to_string(st.st_uid) + ", not by root or by this daemon (uid " +
           std::to_string(self) + "); another user may have made it to take over what is kept under it: remove it " +
           "so that the daemon makes it, or chown it to uid " + std::to_string(self);
  }
  if (S_ISLNK(st.st_mode)) return {};  // a link's own mode means nothing; where it leads is checked
  if (!S_ISDIR(st.st_mode)) return path.string() + " is not a directory";
  const bool writable_by_others = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
  const bool root_sticky = st.st_uid == 0 && (st.st_mode & S_ISVTX) != 0;
  if (writable_by_others && !root_sticky) {
    return path.string() + " is writable by its group or by others (mode " + Octal(st.st_mode) +
           "), so another user could replace what is kept under it: chmod go-w " + path.string();
  }
  return {};
}

// Walks `dir` from the root down, creating what is missing when `create`, and checks every step.
Status CheckPath(const fs::path& dir, bool create, mode_t create_mode, std::string_view what, int links_followed) {
  // Canonical targets contain no links, so one level of following is all a walk needs; the
  // bound only guards against a filesystem changing under the walk.
  if (links_followed > 8) return FailedPreconditionError(std::string(what) + " " + dir.string() + ": too many symbolic links");
  fs::path prefix;
  for (const fs::path& part : dir) {
    prefix /= part;
    struct stat st {};
    if (::lstat(prefix.c_str(), &st) != 0) {
      if (errno != ENOENT || !create) {
        return FailedPreconditionError(std::string(what) + ": " + prefix.string() + ": " + std::strerror(errno));
      }
      if (::mkdir(prefix.c_str(), create_mode) != 0 && errno != EEXIST) {
        return FailedPreconditionError(std::string(what) + ": creating " + prefix.string() + ": " + std::strerror(errno));
      }
      // mkdir's mode passes through the umask; the daemon's own directory gets exactly its mode.
      if (::chmod(prefix.c_str(), create_mode) != 0 || ::lstat(prefix.c_str(), &st) != 0) {
        return FailedPreconditionError(std::string(what) + ": " + prefix.string() + ": " + std::strerror(errno));
      }
    }
    if (std::string why = Distrust(prefix, st); !why.empty()) {
      return FailedPreconditionError(std::string(what) + " " + dir.string() + " cannot be trusted: " + why);
    }
    if (S_ISLNK(st.st_mode)) {
      std::error_code ec;
      const fs::path target = fs::canonical(prefix, ec);
      if (ec) return FailedPreconditionError(std::string(what) + ": resolving " + prefix.string() + ": " + ec.message());
      SIGIL_RETURN_IF_ERROR(CheckPath(target, false, create_mode, what, links_followed + 1));
    }
  }
  return Status::Ok();
}

}  // namespace

Status EnsureOwnedDirectory(const fs::path& dir, mode_t create_mode, std::string_view what) {
  std::error_code ec;
  fs::path absolute = fs::absolute(dir.empty() ? fs::path(".") : dir, ec).lexically_normal();
  if (!absolute.has_filename()) absolute = absolute.parent_path();  // "/a/b/" walks as "/a/b"
  if (ec) return FailedPreconditionError(std::string(what) + " " + dir.string() + ": " + ec.message());
  return CheckPath(absolute, true, create_mode, what, 0);
}

}  // namespace sigil::transport
