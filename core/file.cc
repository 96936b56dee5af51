#include "core/file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sigil {

Status ErrnoError(Code code, const std::string& what) { return Status(code, what + ": " + std::strerror(errno)); }

Result<std::string> ReadWholeFile(const std::filesystem::path& path, std::string_view what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFoundError(std::string(what) + " " + path.string() + " does not exist");
    return ErrnoError(Code::kPermissionDenied, "reading " + std::string(what) + " " + path.string());
  }
  std::string contents;
  char buffer[16384];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status failed = ErrnoError(Code::kDataLoss, "reading " + std::string(what) + " " + path.string());
      ::close(fd);
      return failed;
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return contents;
}

}  // namespace sigil
