#include "transport/socket_stream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>

#include "transport/unix_listener.h"

namespace sigil::transport {
namespace {

// How long a closing connection may take to hand its last bytes (GOAWAY, alert) to the kernel.
constexpr uint64_t kFlushOnCloseMs = 1000;

struct WriteReq {
  uv_write_t req;
  std::vector<uint8_t> bytes;
};

std::string UvError(int code) { return std::string(uv_err_name(code)) + " " + uv_strerror(code); }

}  // namespace

Result<Endpoint> Endpoint::Parse(std::string_view target) {
  if (target.starts_with("unix://")) {
    target.remove_prefix(7);
    if (target.empty() || target[0] != '/') {
      return InvalidArgumentError("unix:// target needs an absolute path: " + std::string(target));
    }
    return Unix(std::string(target));
  }
  if (target.starts_with("unix:")) {
    target.remove_prefix(5);
    if (target.empty()) return InvalidArgumentError("unix: target has no path");
    return Unix(std::string(target));
  }
  auto colon = target.rfind(':');
  if (colon == std::string_view::npos) {
    return InvalidArgumentError("target '" + std::string(target) + "' has no port");
  }
  int port = 0;
  auto digits = target.substr(colon + 1);
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || p != digits.data() + digits.size() || port <= 0 || port > 65535) {
    return InvalidArgumentError("target '" + std::string(target) + "' has a bad port");
  }
  return Tcp(std::string(target.substr(0, colon)), port);
}

std::string Endpoint::ToString() const {
  if (is_unix()) return "unix:" + unix_path;
  return host + ":" + std::to_string(port);
}

SocketStream::SocketStream(EventLoop* loop, bool is_pipe, Delegate* delegate)
    : loop_(loop), is_pipe_(is_pipe), delegate_(delegate) {
  if (is_pipe) {
    uv_pipe_init(loop->uv(), &handle_.pipe, 0);
  } else {
    uv_tcp_init(loop->uv(), &handle_.tcp);
  }
  handle_.tcp.data = this;  // `data` sits at the same place in every handle type
  uv_timer_init(loop->uv(), &timer_);
  timer_.data = this;
  handles_open_ = 2;
}

Status SocketStream::SetUpTls(std::shared_ptr<const TlsContext> tls, std::string server_name) {
  if (!tls) return Status::Ok();
  SIGIL_ASSIGN_OR_RETURN(tls_, TlsSession::Create(std::move(tls), std::move(server_name)));
  return Status::Ok();
}

Result<SocketStream*> SocketStream::Accept(EventLoop* loop, uv_stream_t* server,
                                           std::shared_ptr<const TlsContext> tls,
                                           Delegate* delegate) {
  bool is_pipe = server->type == UV_NAMED_PIPE;
  auto* s = new SocketStream(loop, is_pipe, delegate);
  int rc = uv_accept(server, s->stream());
  if (rc != 0) {
    s->delegate_ = nullptr;
    s->Close(UnavailableError("accept: " + UvError(rc)), false);
    return UnavailableError("accept: " + UvError(rc));
  }
  if (is_pipe) {
    uv_os_fd_t fd;
    uv_fileno(reinterpret_cast<uv_handle_t*>(&s->handle_), &fd);
    auto creds = ReadPeerCredentials(fd);
    if (creds.ok()) {
      s->peer_.credentials = *creds;
      // The listener asked the kernel to stamp each write with its writer (SO_PASSCRED,
      // inherited by every connection it accepts).
      int passcred = 0;
      socklen_t length = sizeof(passcred);
      if (::getsockopt(fd, SOL_SOCKET, SO_PASSCRED, &passcred, &length) == 0 && passcred != 0) {
        s->peer_.credentials->process = PeerProcess::Hold(creds->pid);
        s->vouch_for_writers_ = true;
      }
    }
    char path[512];
    size_t len = sizeof(path);
    s->peer_.address = "unix:";
    if (uv_pipe_getsockname(&s->handle_.pipe, path, &len) == 0) {
      s->peer_.address.append(path, len);
    }
  } else {
    uv_tcp_nodelay(&s->handle_.tcp, 1);
    sockaddr_storage addr{};
    int len = sizeof(addr);
    if (uv_tcp_getpeername(&s->handle_.tcp, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      char host[INET6_ADDRSTRLEN] = {};
      int port = 0;
      if (addr.ss_family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(&addr);
        uv_ip4_name(in, host, sizeof(host));
        port = ntohs(in->sin_port);
      } else if (addr.ss_family == AF_INET6) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
        uv_ip6_name(in6, host, sizeof(host));
        port = ntohs(in6->sin6_port);
      }
      s->peer_.address = std::string(host) + ":" + std::to_string(port);
    }
  }
  if (Status st = s->SetUpTls(std::move(tls), ""); !st.ok()) {
    s->delegate_ = nullptr;
    s->Close(st, false);
    return st;
  }
  return s;
}

void SocketStream::Start() {
  StartReading();
  if (!tls_) MarkOpen();
}

SocketStream* SocketStream::Connect(EventLoop* loop, const Endpoint& endpoint,
                                    std::shared_ptr<const TlsContext> tls, std::string server_name,
                                    Delegate* delegate) {
  auto* s = new SocketStream(loop, endpoint.is_unix(), delegate);
  s->peer_.address = endpoint.ToString();
  if (Status st = s->SetUpTls(std::move(tls), std::move(server_name)); !st.ok()) {
    s->Close(st, false);
    return s;
  }
  s->connect_req_.data = s;
  if (endpoint.is_unix()) {
    uv_pipe_connect(&s->connect_req_, &s->handle_.pipe, endpoint.unix_path.c_str(),
                    &SocketStream::OnConnect);
    return s;
  }
  std::string host = endpoint.host == "localhost" ? "127.0.0.1" : endpoint.host;
  sockaddr_storage addr{};
  int rc = uv_ip4_addr(host.c_str(), endpoint.port, reinterpret_cast<sockaddr_in*>(&addr));
  if (rc != 0) rc = uv_ip6_addr(host.c_str(), endpoint.port, reinterpret_cast<sockaddr_in6*>(&addr));
  if (rc == 0) {
    rc = uv_tcp_connect(&s->connect_req_, &s->handle_.tcp, reinterpret_cast<sockaddr*>(&addr),
                        &SocketStream::OnConnect);
  }
  if (rc != 0) {
    s->Close(UnavailableError("connecting to " + endpoint.ToString() + ": " + UvError(rc)), false);
  }
  return s;
}

void SocketStream::OnConnect(uv_connect_t* req, int status) {
  auto* s = static_cast<SocketStream*>(req->data);
  if (s->closing_) return;
  if (status != 0) {
    s->Close(UnavailableError("connecting to " + s->peer_.address + ": " + UvError(status)), false);
    return;
  }
  if (!s->is_pipe_) uv_tcp_nodelay(&s->handle_.tcp, 1);
  s->StartReading();
  if (s->tls_) {
    if (Status st = s->tls_->Start(); !st.ok()) {
      s->Close(st, false);
      return;
    }
    s->FlushTls();
  } else {
    s->MarkOpen();
  }
}

void SocketStream::StartReading() {
  uv_read_start(stream(), &SocketStream::OnAlloc, &SocketStream::OnRead);
}

void SocketStream::MarkOpen() {
  open_ = true;
  if (tls_) {
    peer_.spiffe_id = tls_->peer_id();
    peer_.serial = tls_->peer_serial();
    peer_.tls_version = tls_->version();
  }
  if (delegate_) delegate_->OnOpen();
}

void SocketStream::OnAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* s = static_cast<SocketStream*>(handle->data);
  if (s->vouch_for_writers_ && !s->PeekWriter()) {
    // Nothing to read yet, and a write landing before libuv's own read would be read unseen:
    // an empty buffer ends this round (OnRead hears UV_ENOBUFS) until the socket is readable.
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  const std::span<uint8_t> shared = s->loop_->read_buffer();
  buf->base = reinterpret_cast<char*>(shared.data());
  buf->len = shared.size();
}

// With SO_PASSCRED on, a read of a Unix stream socket never joins bytes of two writers, so the
// writer of the first byte waiting (SCM_CREDENTIALS, which the kernel fills in and a writer
// cannot forge without CAP_SYS_ADMIN) is the writer of every byte the next read returns.
bool SocketStream::PeekWriter() {
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&handle_), &fd) != 0) return true;
  char byte;
  iovec iov{.iov_base = &byte, .iov_len = 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  const ssize_t peeked = ::recvmsg(fd, &message, MSG_PEEK | MSG_DONTWAIT);
  if (peeked < 0) return errno != EAGAIN && errno != EWOULDBLOCK;  // let the read report it
  if (peeked == 0) return true;                                    // the peer closed: read says so
  ucred writer{};  // no stamp (pid 0) is nobody the connection vouches for
  for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
      std::memcpy(&writer, CMSG_DATA(c), sizeof(writer));
    }
  }
  peer_.credentials->process->NoteWriter(writer.pid, writer.uid);
  return true;
}

void SocketStream::OnRead(uv_stream_t* handle, ssize_t nread, const uv_buf_t* buf) {
  auto* s = static_cast<SocketStream*>(handle->data);
  if (nread == 0 || s->closing_) return;
  if (nread == UV_ENOBUFS && s->vouch_for_writers_) return;  // see OnAlloc
  if (nread < 0) {
    s->Close(nread == UV_EOF ? UnavailableError("peer closed the connection")
                             : UnavailableError("read: " + UvError(static_cast<int>(nread))),
             false);
    return;
  }
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(buf->base),
                                 static_cast<size_t>(nread));
  if (!s->tls_) {
    if (s->delegate_) s->delegate_->OnBytes(bytes);
    return;
  }
  s->plaintext_.clear();
  Status st = s->tls_->Receive(bytes, &s->plaintext_);
  s->FlushTls();
  if (!st.ok()) {
    s->Close(st, true);  // the alert, if any, is already queued
    return;
  }
  if (!s->open_ && s->tls_->handshake_complete()) {
    s->MarkOpen();
    if (s->closing_) return;
  }
  if (!s->plaintext_.empty() && s->delegate_) s->delegate_->OnBytes(s->plaintext_);
}

void SocketStream::Write(std::span<const uint8_t> plaintext) {
  if (closing_ || plaintext.empty()) return;
  if (!tls_) {
    WriteRaw(std::vector<uint8_t>(plaintext.begin(), plaintext.end()));
    return;
  }
  if (Status st = tls_->Send(plaintext); !st.ok()) {
    Close(st, false);
    return;
  }
  FlushTls();
}

void SocketStream::FlushTls() {
  if (!tls_ || !tls_->HasOutput()) return;
  cipher_out_.clear();
  tls_->TakeOutput(&cipher_out_);
  WriteRaw(cipher_out_);
  ClearWriteBuffer(cipher_out_);
}

void SocketStream::WriteRaw(std::vector<uint8_t> bytes) {
  if (handles_closing_ || bytes.empty()) return;
  size_t offset = 0;
  if (write_backlog_ == 0) {
    // Most writes fit the socket buffer; try without allocating a request.
    uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(bytes.data()),
                               static_cast<unsigned>(bytes.size()));
    int n = uv_try_write(stream(), &buf, 1);
    if (n > 0) offset = static_cast<size_t>(n);
    if (offset == bytes.size()) return;
  }
  auto* w = new WriteReq;
  w->bytes.assign(bytes.begin() + static_cast<ptrdiff_t>(offset), bytes.end());
  w->req.data = this;
  write_backlog_ += w->bytes.size();
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(w->bytes.data()),
                             static_cast<unsigned>(w->bytes.size()));
  int rc = uv_write(&w->req, stream(), &buf, 1, &SocketStream::OnWrite);
  if (rc != 0) {
    write_backlog_ -= w->bytes.size();
    delete w;
    Close(UnavailableError("write: " + UvError(rc)), false);
  }
}

void SocketStream::OnWrite(uv_write_t* req, int status) {
  auto* w = reinterpret_cast<WriteReq*>(req);
  auto* s = static_cast<SocketStream*>(req->data);
  s->write_backlog_ -= w->bytes.size();
  delete w;
  if (s->handles_closing_) return;
  if (status != 0) {
    s->Close(UnavailableError("write: " + UvError(status)), false);
    return;
  }
  if (s->write_backlog_ > 0) return;
  if (s->close_after_flush_) {
    s->FinishClose();
  } else if (!s->closing_ && s->delegate_) {
    s->delegate_->OnWritable();
  }
}

void SocketStream::Close(Status why, bool flush) {
  if (closing_) {
    if (!flush && !handles_closing_) FinishClose();
    return;
  }
  closing_ = true;
  close_reason_ = std::move(why);
  if (flush && write_backlog_ > 0 && !handles_closing_) {
    close_after_flush_ = true;
    uv_read_stop(stream());
    uv_timer_start(&timer_, &SocketStream::OnTimerFired, kFlushOnCloseMs, 0);
    return;
  }
  FinishClose();
}

void SocketStream::Abandon() {
  delegate_ = nullptr;
  // Nobody has seen this connection, so the process it holds is let go now rather than when
  // libuv calls back: a burst of refused connections would otherwise hold a descriptor each
  // until the accept loop ends, and could run the daemon out of them.
  if (peer_.credentials) peer_.credentials->process.reset();
  Close(CancelledError("abandoned by its owner"), false);
}

void SocketStream::FinishClose() {
  if (handles_closing_) return;
  handles_closing_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_), &SocketStream::OnHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &SocketStream::OnHandleClosed);
}

void SocketStream::OnHandleClosed(uv_handle_t* handle) {
  auto* s = static_cast<SocketStream*>(handle->data);
  if (--s->handles_open_ > 0) return;
  if (s->delegate_) s->delegate_->OnClosed(s->close_reason_);
  delete s;
}

void SocketStream::ArmTimer(std::chrono::milliseconds after) {
  if (closing_) return;
  uv_timer_start(&timer_, &SocketStream::OnTimerFired, static_cast<uint64_t>(after.count()), 0);
}

void SocketStream::CancelTimer() {
  if (!closing_) uv_timer_stop(&timer_);
}

void SocketStream::OnTimerFired(uv_timer_t* timer) {
  auto* s = static_cast<SocketStream*>(timer->data);
  if (s->closing_) {
    s->FinishClose();  // the flush on close took too long
    return;
  }
  if (s->delegate_) s->delegate_->OnTimer();
}

}  // namespace sigil::transport
