// UnixListener: a listening Unix socket whose file mode, parent directory mode and group come
// from config, and whose accepted connections carry the peer's SO_PEERCRED (pid, uid, gid) —
// the facts the agent's workload attestors start from.
//
// The socket file is replaced if stale and removed on Close(). The parent directory is created
// with `dir_mode` when missing; when it exists its mode is set only if `dir_mode` is given, so
// a shared directory such as /tmp is never loosened or tightened by accident. The directory and
// those above it must be trusted (transport/owned_directory.h): one another user made or can
// write is refused.
//
// Thread safety: loop thread only (or before the loop runs).
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "transport/event_loop.h"
#include "transport/socket_stream.h"

namespace sigil::transport {

struct UnixListenerOptions {
  std::string path;
  mode_t file_mode = 0666;              // the Workload API socket is open to every local user
  std::optional<mode_t> dir_mode;       // e.g. 0700 for a server's private admin socket
  std::optional<gid_t> group;           // chgrp of the socket file (and a created directory)
  int backlog = 512;
  // Hold each peer's process from the accept on and learn the writer of every byte it sends
  // (PeerCredentials::process; see peer_process.h): for a socket whose callers are told apart
  // by what process they are. Costs a descriptor per connection and a peek per read.
  bool vouch_for_peers = false;
};

// Called once per pending connection; it accepts with SocketStream::Accept(loop, server, …).
using AcceptFn = std::function<void(uv_stream_t* server)>;

class UnixListener {
 public:
  static Result<std::unique_ptr<UnixListener>> Listen(EventLoop* loop, UnixListenerOptions options,
                                                      AcceptFn on_accept);
  ~UnixListener();
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

  void Close();
  const std::string& path() const { return options_.path; }

 private:
  UnixListener(EventLoop* loop, UnixListenerOptions options, AcceptFn on_accept)
      : loop_(loop), options_(std::move(options)), on_accept_(std::move(on_accept)) {}
  static void OnConnection(uv_stream_t* server, int status);

  EventLoop* loop_;
  UnixListenerOptions options_;
  AcceptFn on_accept_;
  uv_pipe_t* handle_ = nullptr;  // freed by its close callback
};

Result<PeerCredentials> ReadPeerCredentials(int fd);

}  // namespace sigil::transport
