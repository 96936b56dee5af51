// TcpListener: a listening TCP socket. With `reuse_port` several loops can each listen on the
// same address and let the kernel spread connections across them (one loop per thread, no
// shared accept queue).
//
// Thread safety: loop thread only (or before the loop runs).
#pragma once

#include <uv.h>

#include <memory>
#include <string>

#include "core/status.h"
#include "transport/event_loop.h"
#include "transport/unix_listener.h"

namespace sigil::transport {

struct TcpListenerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port; see TcpListener::port()
  int backlog = 512;
  bool reuse_port = false;
};

class TcpListener {
 public:
  static Result<std::unique_ptr<TcpListener>> Listen(EventLoop* loop, TcpListenerOptions options,
                                                     AcceptFn on_accept);
  ~TcpListener();
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  void Close();
  int port() const { return port_; }

 private:
  TcpListener(EventLoop* loop, AcceptFn on_accept) : loop_(loop), on_accept_(std::move(on_accept)) {}
  static void OnConnection(uv_stream_t* server, int status);

  EventLoop* loop_;
  AcceptFn on_accept_;
  uv_tcp_t* handle_ = nullptr;  // freed by its close callback
  int port_ = 0;
};

}  // namespace sigil::transport
