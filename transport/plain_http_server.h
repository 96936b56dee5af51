// A plain HTTP/1.1 GET server for probes and scrapes: /live and /ready for health checkers and
// /metrics for Prometheus, which speak HTTP/1.1 without TLS and often without HTTP/2. nghttp2
// speaks only HTTP/2, so this small responder is written here: one request per connection,
// GET or HEAD only, headers up to 8 KiB, answered and closed.
//
// Thread safety: loop thread only (or before the loop runs); handlers run on the loop and must
// answer quickly (they read state, they do not sign).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/status.h"
#include "transport/event_loop.h"
#include "transport/tcp_listener.h"

namespace sigil::transport {

struct PlainHttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class PlainHttpServer {
 public:
  using Handler = std::function<PlainHttpResponse()>;

  explicit PlainHttpServer(EventLoop* loop) : loop_(loop) {}
  ~PlainHttpServer();

  void Route(std::string path, Handler handler) { routes_[std::move(path)] = std::move(handler); }
  Status Listen(const std::string& host, int port);
  int port() const { return listener_ ? listener_->port() : 0; }
  void Close();

 private:
  class Connection;
  EventLoop* loop_;
  std::map<std::string, Handler> routes_;
  std::unique_ptr<TcpListener> listener_;
};

}  // namespace sigil::transport
