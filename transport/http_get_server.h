// An HTTP/1.1 GET server for documents that HTTP/1.1 clients fetch: /live and /ready for health
// checkers, /metrics for Prometheus, the OIDC discovery document and its keys for relying
// parties, which speak HTTP/1.1 and often not HTTP/2. nghttp2 speaks only HTTP/2, so this small
// responder is written here: one request per connection, GET or HEAD only, headers up to
// 8 KiB, answered and closed; over TLS (HttpGetServerOptions::tls) or in the clear.
//
// Like every listener it is bounded (HttpGetServerOptions): a connection over the total or
// per-address count is accepted and closed at once, and one whose request is not complete
// within request_timeout (the TLS handshake included) is closed, so idle or trickling peers
// cannot hold the descriptors the key store and the datastore need.
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
#include <string_view>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "core/status.h"
#include "transport/event_loop.h"
#include "transport/http_header_fields.h"
#include "transport/tcp_listener.h"
#include "transport/tls.h"

namespace sigil::transport {

struct HttpGetServerOptions {
  size_t max_connections = 64;
  size_t max_connections_per_source = 16;  // per peer address
  // From the accept to the request's blank line: a probe sends a hundred bytes at once.
  std::chrono::milliseconds request_timeout{5'000};
  // When set, connections speak TLS with the context current at their accept (ALPN
  // "http/1.1"); a swapped context serves the next handshake.
  std::shared_ptr<TlsContextSource> tls;
};

struct HttpGetRequest {
  std::string method;  // GET or HEAD
  std::string path;    // without the query
  // Header fields as sent, names lower-cased, in order.
  std::vector<std::pair<std::string, std::string>> headers;
  bool over_tls = false;

  // The first field named `name` (lower-case); empty when absent.
  std::string_view Header(std::string_view name) const;
};

struct HttpGetResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // more fields, e.g. Cache-Control
};

// The request in `head`, the bytes before its blank line: the request line and header fields.
// The answer to send instead when it is not a GET or HEAD request this server reads (400, 405).
std::variant<HttpGetRequest, HttpGetResponse> ParseHttpGetRequest(std::string_view head);

class HttpGetServer {
 public:
  using Handler = std::function<HttpGetResponse(const HttpGetRequest&)>;

  explicit HttpGetServer(EventLoop* loop, HttpGetServerOptions options = {})
      : loop_(loop), options_(options) {}
  ~HttpGetServer();

  void Route(std::string path, Handler handler) { routes_[std::move(path)] = std::move(handler); }
  // A handler that needs nothing of the request (a probe).
  void Route(std::string path, std::function<HttpGetResponse()> handler) {
    routes_[std::move(path)] = [handler = std::move(handler)](const HttpGetRequest&) { return handler(); };
  }
  Status Listen(const std::string& host, int port);
  int port() const { return listener_ ? listener_->port() : 0; }
  void Close();

 private:
  class Connection;
  void Accept(uv_stream_t* server);
  void Release(Connection* connection);

  EventLoop* loop_;
  HttpGetServerOptions options_;
  // Open connections, told when the server goes before them so none calls back into it.
  std::unordered_set<Connection*> open_;
  std::map<std::string, size_t, std::less<>> by_source_;
  std::map<std::string, Handler> routes_;
  std::unique_ptr<TcpListener> listener_;
};

}  // namespace sigil::transport
