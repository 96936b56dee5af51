#include "hw/secret_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sigil::hw {

Status WriteSecretFile(const std::filesystem::path& path, std::span<const uint8_t> contents, std::string_view what) {
  const std::filesystem::path temp = path.string() + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError(Code::kPermissionDenied, "creating " + std::string(what) + " " + temp.string());
  const bool written =
      ::write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size()) && ::fsync(fd) == 0;
  const Status failed = written ? Status::Ok() : ErrnoError(Code::kInternal, "writing " + std::string(what) + " " + path.string());
  ::close(fd);
  if (!written) {
    ::unlink(temp.c_str());
    return failed;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const Status renamed = ErrnoError(Code::kInternal, "renaming " + std::string(what) + " into " + path.string());
    ::unlink(temp.c_str());
    return renamed;
  }
  return Status::Ok();
}

}  // namespace sigil::hw
