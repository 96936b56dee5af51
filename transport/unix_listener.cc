#include "transport/unix_listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "transport/owned_directory.h"

namespace sigil::transport {
namespace {

std::string Errno(int err) { return std::strerror(err); }

void FreePipe(uv_handle_t* handle) { delete reinterpret_cast<uv_pipe_t*>(handle); }

Status PrepareDirectory(const UnixListenerOptions& o) {
  std::filesystem::path dir = std::filesystem::path(o.path).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  const bool existed = std::filesystem::exists(dir, ec);
  SIGIL_RETURN_IF_ERROR(EnsureOwnedDirectory(dir, o.dir_mode.value_or(0755), "socket directory"));
  if (o.dir_mode && existed && ::chmod(dir.c_str(), *o.dir_mode) != 0) {
    return UnavailableError("chmod of socket directory " + dir.string() + ": " + Errno(errno));
  }
  if (o.group && (o.dir_mode || !existed) && ::chown(dir.c_str(), static_cast<uid_t>(-1), *o.group) != 0) {
    return UnavailableError("chgrp of socket directory " + dir.string() + ": " + Errno(errno));
  }
  return Status::Ok();
}

}  // namespace

Result<PeerCredentials> ReadPeerCredentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return UnavailableError("SO_PEERCRED: " + Errno(errno));
  }
  PeerCredentials credentials{.pid = cred.pid, .uid = cred.uid, .gid = cred.gid};
  // Asked with room for a typical list first; ERANGE says how much a longer one needs.
  std::vector<gid_t> groups(32);
  len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
  int asked = ::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len);
  if (asked != 0 && errno == ERANGE) {
    groups.resize(len / sizeof(gid_t));
    asked = ::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len);
  }
  if (asked == 0) {
    groups.resize(len / sizeof(gid_t));
    credentials.supplementary_groups = std::move(groups);
  }
  return credentials;
}

Result<std::unique_ptr<UnixListener>> UnixListener::Listen(EventLoop* loop,
                                                           UnixListenerOptions options,
                                                           AcceptFn on_accept) {
  if (options.path.empty()) return InvalidArgumentError("unix socket path is empty");
  if (options.path.size() >= sizeof(sockaddr_un::sun_path)) {
    return InvalidArgumentError("unix socket path is longer than " +
                                std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                " bytes: " + options.path);
  }
  SIGIL_RETURN_IF_ERROR(PrepareDirectory(options));
  // A socket file left by a previous run would make bind fail; anything else is not ours.
  struct stat st {};
  if (::lstat(options.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return FailedPreconditionError(options.path + " exists and is not a socket");
    }
    ::unlink(options.path.c_str());
  }
  std::unique_ptr<UnixListener> self(new UnixListener(loop, std::move(options), std::move(on_accept)));
  self->handle_ = new uv_pipe_t;
  uv_pipe_init(loop->uv(), self->handle_, 0);
  self->handle_->data = self.get();
  const std::string& path = self->options_.path;
  // Bind under a restrictive umask so the file never exists with looser permissions than asked.
  mode_t old_umask = ::umask(0777 & ~self->options_.file_mode);
  int rc = uv_pipe_bind(self->handle_, path.c_str());
  ::umask(old_umask);
  if (rc == 0 && self->options_.vouch_for_peers) {
    // Set before listen(): every connection accepted inherits it, and bytes written before
    // the accept carry their writer too.
    uv_os_fd_t fd;
    const int on = 1;
    rc = uv_fileno(reinterpret_cast<uv_handle_t*>(self->handle_), &fd);
    if (rc == 0 && ::setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) != 0) rc = -errno;
  }
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(self->handle_),
                              self->options_.backlog, &UnixListener::OnConnection);
  if (rc != 0) {
    self->Close();
    return UnavailableError("listening on " + path + ": " + uv_strerror(rc));
  }
  if (::chmod(path.c_str(), self->options_.file_mode) != 0) {
    int err = errno;
    self->Close();
    return UnavailableError("chmod of " + path + ": " + Errno(err));
  }
  if (self->options_.group &&
      ::chown(path.c_str(), static_cast<uid_t>(-1), *self->options_.group) != 0) {
    int err = errno;
    self->Close();
    return UnavailableError("chgrp of " + path + ": " + Errno(err));
  }
  return self;
}

UnixListener::~UnixListener() { Close(); }

void UnixListener::Close() {
  if (!handle_) return;
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_), &FreePipe);
  handle_ = nullptr;
  ::unlink(options_.path.c_str());
}

void UnixListener::OnConnection(uv_stream_t* server, int status) {
  auto* self = static_cast<UnixListener*>(server->data);
  if (self == nullptr || status != 0) return;
  self->on_accept_(server);
}

}  // namespace sigil::transport
