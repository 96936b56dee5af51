// A plain HTTP/1.1 GET server for probes and scrapes: /live and /ready for health checkers and
// /metrics for Prometheus, which speak HTTP/1.1 without TLS and often without HTTP/2. nghttp2
// speaks only HTTP/2, so this small responder is written here: one request per connection,
// GET or HEAD only, headers up to 8 KiB, answered and closed.
//
// Like every listener it is bounded (PlainHttpServerOptions): a connection over the total or
// per-address count is accepted and closed at once, and one whose request is not complete
// within request_timeout is closed, so idle or trickling peers cannot hold the descriptors the
// key store and the datastore need.
//
// Thread safety: loop thread only (or before the loop runs); handlers run on the loop and must
// answer quickly (they read state, they do not sign).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>

#include "core/status.h"
#include "transport/event_loop.h"
#include "transport/tcp_listener.h"

namespace sigil::transport {

struct PlainHttpServerOptions {
  size_t max_connections = 64;
  size_t max_connections_per_source = 16;  // per peer address
  // From the accept to the request's blank line: a probe sends a hundred bytes at once.
  std::chrono::milliseconds request_timeout{5'000};
};

struct PlainHttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class PlainHttpServer {
 public:
  using Handler = std::function<PlainHttpResponse()>;

  explicit PlainHttpServer(EventLoop* loop, PlainHttpServerOptions options = {})
      : loop_(loop), options_(options) {}
  ~PlainHttpServer();

  void Route(std::string path, Handler handler) { routes_[std::move(path)] = std::move(handler); }
  Status Listen(const std::string& host, int port);
  int port() const { return listener_ ? listener_->port() : 0; }
  void Close();

 private:
  class Connection;
  void Accept(uv_stream_t* server);
  void Release(Connection* connection);

  EventLoop* loop_;
  PlainHttpServerOptions options_;
  // Open connections, told when the server goes before them so none calls back into it.
  std::unordered_set<Connection*> open_;
  std::map<std::string, size_t, std::less<>> by_source_;
  std::map<std::string, Handler> routes_;
  std::unique_ptr<TcpListener> listener_;
};

}  // namespace sigil::transport
