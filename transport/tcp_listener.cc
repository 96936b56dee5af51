#include "transport/tcp_listener.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sigil::transport {
namespace {

void FreeTcp(uv_handle_t* handle) { delete reinterpret_cast<uv_tcp_t*>(handle); }

}  // namespace

Result<std::unique_ptr<TcpListener>> TcpListener::Listen(EventLoop* loop, TcpListenerOptions options,
                                                         AcceptFn on_accept) {
  sockaddr_storage addr{};
  std::string host = options.host == "localhost" ? "127.0.0.1" : options.host;
  int family = AF_INET;
  if (uv_ip4_addr(host.c_str(), options.port, reinterpret_cast<sockaddr_in*>(&addr)) != 0) {
    if (uv_ip6_addr(host.c_str(), options.port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
      return InvalidArgumentError("listen address '" + options.host + "' is not an IP literal");
    }
    family = AF_INET6;
  }
  std::unique_ptr<TcpListener> self(new TcpListener(loop, std::move(on_accept)));
  // The socket is made by hand because libuv of this vintage cannot set SO_REUSEPORT.
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return UnavailableError(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (options.reuse_port) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  socklen_t len = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    int err = errno;
    ::close(fd);
    return UnavailableError("bind " + options.host + ":" + std::to_string(options.port) + ": " +
                            std::strerror(err));
  }
  self->handle_ = new uv_tcp_t;
  uv_tcp_init(loop->uv(), self->handle_);
  self->handle_->data = self.get();
  int rc = uv_tcp_open(self->handle_, fd);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(self->handle_), options.backlog,
                   &TcpListener::OnConnection);
  }
  if (rc != 0) {
    self->Close();
    return UnavailableError("listen " + options.host + ":" + std::to_string(options.port) + ": " +
                            uv_strerror(rc));
  }
  sockaddr_storage bound{};
  int bound_len = sizeof(bound);
  uv_tcp_getsockname(self->handle_, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  self->port_ = ntohs(bound.ss_family == AF_INET
                          ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                          : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return self;
}

TcpListener::~TcpListener() { Close(); }

void TcpListener::Close() {
  if (!handle_) return;
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_), &FreeTcp);
  handle_ = nullptr;
}

void TcpListener::OnConnection(uv_stream_t* server, int status) {
  auto* self = static_cast<TcpListener*>(server->data);
  if (self == nullptr || status != 0) return;
  self->on_accept_(server);
}

}  // namespace sigil::transport
