// SocketStream: one connected socket (TCP or Unix) on an event loop, optionally wrapped in
// TLS, that hands plaintext to a Delegate (an HTTP/2 session) and takes plaintext from it.
//
// The stream owns its libuv handles, its read buffer and its pending writes. It deletes itself
// after its handles have closed, calling Delegate::OnClosed last; an owner that goes away first
// calls Abandon(), after which no callback reaches it.
//
// Thread safety: loop thread only.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/spiffe_id.h"
#include "core/status.h"
#include "transport/event_loop.h"
#include "transport/peer_process.h"
#include "transport/tls.h"

namespace sigil::transport {

// SO_PEERCRED and SO_PEERGROUPS of a Unix-socket peer, read when the connection was accepted:
// the credentials it connected with, which the kernel vouches for.
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::optional<std::vector<gid_t>> supplementary_groups;  // nullopt when the kernel would not say
  // Held from the accept on, on listeners that vouch for their peers (UnixListenerOptions).
  std::shared_ptr<PeerProcess> process;
};

// Empties a write buffer, and gives its memory back when a burst made it larger than everyday
// traffic needs: connections live for months, and one large message should not stay with them.
inline void ClearWriteBuffer(std::vector<uint8_t>& buffer) {
  constexpr size_t kEverydayBytes = 64 * 1024;
  if (buffer.capacity() > kEverydayBytes) {
    std::vector<uint8_t>().swap(buffer);  // `buffer = {}` would keep the capacity
  } else {
    buffer.clear();
  }
}

struct PeerInfo {
  std::string address;                           // "127.0.0.1:40112" or "unix:/run/x.sock"
  std::optional<PeerCredentials> credentials;    // Unix sockets only
  std::optional<SpiffeId> spiffe_id;             // mutual TLS only
  std::string serial;                            // mutual TLS only: the leaf's, as SerialHex writes it
  std::string tls_version;                       // empty when plaintext
};

// Where a client connects: "unix:/path", "unix:///path" or "host:port" (IPv4 literal or
// "localhost").
struct Endpoint {
  std::string unix_path;  // set for Unix sockets
  std::string host;
  int port = 0;

  static Result<Endpoint> Parse(std::string_view target);
  static Endpoint Unix(std::string path) { return Endpoint{.unix_path = std::move(path)}; }
  static Endpoint Tcp(std::string host, int port) { return Endpoint{.host = host, .port = port}; }
  bool is_unix() const { return !unix_path.empty(); }
  std::string ToString() const;
};

class SocketStream {
 public:
  class Delegate {
   public:
    virtual ~Delegate() = default;
    // The connection is usable: connected, and the TLS handshake (if any) is done.
    virtual void OnOpen() = 0;
    virtual void OnBytes(std::span<const uint8_t> plaintext) = 0;
    // Every queued write has reached the kernel.
    virtual void OnWritable() {}
    virtual void OnTimer() {}
    // Last call; the stream is deleted right after it returns.
    virtual void OnClosed(const Status& why) = 0;
  };

  // Accepts one pending connection from a listening handle (a uv_tcp_t or a uv_pipe_t).
  // Nothing is read until Start(), so the owner can keep the pointer before callbacks begin.
  static Result<SocketStream*> Accept(EventLoop* loop, uv_stream_t* server,
                                      std::shared_ptr<const TlsContext> tls, Delegate* delegate);
  void Start();
  void set_delegate(Delegate* delegate) { delegate_ = delegate; }
  // Starts connecting; failures arrive as OnClosed(Unavailable).
  static SocketStream* Connect(EventLoop* loop, const Endpoint& endpoint,
                               std::shared_ptr<const TlsContext> tls, std::string server_name,
                               Delegate* delegate);

  // Queues plaintext for the peer (encrypted first under TLS).
  void Write(std::span<const uint8_t> plaintext);
  // Closes the connection. With `flush`, queued writes (a GOAWAY, a TLS alert) go out first,
  // bounded by a short timer.
  void Close(Status why, bool flush = true);
  // The owner is going away: close without calling the delegate again.
  void Abandon();

  // One re-armable timer, reported through Delegate::OnTimer.
  void ArmTimer(std::chrono::milliseconds after);
  void CancelTimer();

  size_t write_backlog() const { return write_backlog_; }
  bool is_open() const { return open_; }
  bool closing() const { return closing_; }
  const PeerInfo& peer() const { return peer_; }
  EventLoop* loop() const { return loop_; }

 private:
  SocketStream(EventLoop* loop, bool is_pipe, Delegate* delegate);
  ~SocketStream() = default;
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&handle_); }
  Status SetUpTls(std::shared_ptr<const TlsContext> tls, std::string server_name);
  void StartReading();
  void MarkOpen();
  // Before each read on a connection that vouches for its writers: which process wrote the
  // bytes the read will return. False when there is nothing to read yet.
  bool PeekWriter();
  void WriteRaw(std::vector<uint8_t> bytes);
  void FlushTls();
  void FinishClose();

  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* handle, ssize_t nread, const uv_buf_t* buf);
  static void OnWrite(uv_write_t* req, int status);
  static void OnConnect(uv_connect_t* req, int status);
  static void OnTimerFired(uv_timer_t* timer);
  static void OnHandleClosed(uv_handle_t* handle);

  EventLoop* loop_;
  bool is_pipe_;
  bool vouch_for_writers_ = false;
  Delegate* delegate_;
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } handle_;
  uv_timer_t timer_;
  uv_connect_t connect_req_;
  std::unique_ptr<TlsSession> tls_;
  PeerInfo peer_;
  bool open_ = false;
  bool closing_ = false;
  bool close_after_flush_ = false;
  bool handles_closing_ = false;
  int handles_open_ = 0;
  Status close_reason_;
  size_t write_backlog_ = 0;
  std::vector<uint8_t> plaintext_;  // reused for every read
  std::vector<uint8_t> cipher_out_;
};

}  // namespace sigil::transport
