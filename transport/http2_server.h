// Http2Server: HTTP/2 (RFC 9113) on nghttp2, over TLS on TCP or in plaintext ("prior
// knowledge") on Unix sockets, on one event loop.
//
// Every peer may be hostile, so every resource a peer can make the server hold is bounded
// (Http2ServerOptions): connections in total and per source (an IP address on TCP, a uid on a
// Unix socket; one more is accepted and closed at once, so the kernel's backlog never fills
// with them); SETTINGS_MAX_CONCURRENT_STREAMS (excess streams are refused by nghttp2);
// flow-control windows; a header-list size (answered 431); a request body size (answered
// 413) and the request bytes buffered across a connection's streams (the stream that would
// pass it is refused); the time a request may take to arrive in full (a stream that opened
// and fell silent is reset); and the response bytes queued but not yet taken by a slow reader,
// per stream and per connection (the stream is reset: the slow reader loses its stream, not
// the daemon its memory). A connection that has not completed its TLS handshake and HTTP/2
// preface within `handshake_timeout` is closed, as is one with no open stream for
// `idle_timeout` (after a GOAWAY), and one whose peer keeps resetting streams before they are
// answered (a token bucket, `premature_resets_per_second` and `premature_reset_burst`; GOAWAY
// ENHANCE_YOUR_CALM). Protocol errors close only the offending connection.
//
// A request reaches the handler once it is complete (END_STREAM), as an Http2ServerStream the
// handler answers at once or later. Shutdown() is graceful: listeners close, every connection
// gets a GOAWAY, streams already accepted run to completion, then connections close.
//
// Thread safety: Http2Server and Http2ServerStream belong to their loop's thread. A handler
// that finishes on another thread posts to stream->loop(). A stream object stays valid
// (shared_ptr) after its HTTP/2 stream closed; calls on it then do nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/failure_log.h"
#include "core/status.h"
#include "transport/event_loop.h"
#include "transport/http2.h"
#include "transport/socket_stream.h"
#include "transport/tcp_listener.h"
#include "transport/tls.h"
#include "transport/unix_listener.h"

namespace sigil::transport {

struct Http2Request {
  std::string method;
  std::string path;
  std::string authority;
  std::string scheme;
  Headers headers;  // regular fields only
  std::string body;
};

struct Http2ServerOptions {
  uint32_t max_concurrent_streams = 128;
  uint32_t initial_stream_window = 1 << 20;
  uint32_t connection_window = 16 << 20;
  size_t max_header_list_bytes = 16 * 1024;
  size_t max_request_body_bytes = 4 << 20;
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds idle_timeout{300'000};
  size_t max_connections = 4096;
  size_t max_connections_per_source = 256;
  std::chrono::milliseconds request_timeout{30'000};
  size_t max_connection_request_bytes = 16 << 20;
  size_t max_stream_unsent_bytes = 8 << 20;
  size_t max_connection_unsent_bytes = 32 << 20;
  // The same two, over every connection of one source (an IP address, a uid): one peer holding
  // many connections gets twice one connection's share, not one per connection.
  size_t max_source_request_bytes = 32 << 20;
  size_t max_source_unsent_bytes = 64 << 20;
  // Streams a peer resets before the head of their answer was sent ("rapid reset",
  // CVE-2023-44487: the reset frees the stream's slot at once, so MAX_CONCURRENT_STREAMS no
  // longer bounds the requests it starts, and a request answered at once but reset in the same
  // read costs a whole request for no reader). Real clients cancel after an answer began (a
  // watch read once) and seldom before one (a deadline), so only those resets count; past the
  // bucket the connection ends. Resets after an answer began are paced by the answers.
  double premature_resets_per_second = 10;
  double premature_reset_burst = 100;
};

// How many connections the open-file limit leaves room for: the soft RLIMIT_NOFILE less a
// reserve (64 and an eighth of the limit) that the key store, the datastore, logs and the other
// listeners can always open. An Http2Server never allows more than this, whatever its options.
size_t OpenFileConnectionBudget();

// Who a connection counts against for max_connections_per_source: "uid:<n>" on a Unix socket,
// the IP address (without the port) on TCP.
std::string ConnectionSource(const PeerInfo& peer);

class Http2ServerConnection;

class Http2ServerStream : public std::enable_shared_from_this<Http2ServerStream> {
 public:
  const Http2Request& request() const { return request_; }
  const PeerInfo& peer() const { return *peer_; }
  EventLoop* loop() const { return loop_; }
  int32_t id() const { return id_; }

  // The response head. With `end_stream` the response has neither body nor trailers.
  void Respond(int status, const Headers& headers, bool end_stream = false);
  // Queues body bytes (after Respond). Flow control decides when they leave.
  void Write(std::string data);
  // The same for bytes shared with others (one message sent to many streams): queued as they
  // are, read from where they lie when nghttp2 fills a DATA frame, never copied here.
  void Write(std::shared_ptr<const std::string> data);
  // Ends the response after the queued body, with trailers when not empty.
  void End(Headers trailers = {});
  // RST_STREAM with an HTTP/2 error code.
  void Reset(uint32_t error_code);

  // Called once when the stream closes: error_code 0 after a complete exchange, otherwise the
  // RST_STREAM code (the peer cancelled) or NGHTTP2_CANCEL when the connection went away.
  void SetOnClose(std::function<void(uint32_t error_code)> fn) { on_close_ = std::move(fn); }
  bool closed() const { return conn_ == nullptr; }
  bool responded() const { return responded_; }
  // When the request's first header arrived: where a call's elapsed time starts.
  std::chrono::steady_clock::time_point request_started() const { return request_started_; }
  size_t queued_bytes() const { return queued_bytes_; }

 private:
  friend class Http2ServerConnection;
  Http2ServerStream(Http2ServerConnection* conn, EventLoop* loop, int32_t id,
                    std::shared_ptr<const PeerInfo> peer)
      : conn_(conn), loop_(loop), id_(id), peer_(std::move(peer)) {}
  void MarkClosed(uint32_t error_code);
  static ssize_t ReadBody(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                          size_t length, uint32_t* data_flags, nghttp2_data_source* source,
                          void* user);

  Http2ServerConnection* conn_;
  EventLoop* loop_;
  int32_t id_;
  std::shared_ptr<const PeerInfo> peer_;
  Http2Request request_;
  size_t header_bytes_ = 0;
  std::chrono::steady_clock::time_point request_started_;
  bool headers_too_large_ = false;
  bool body_too_large_ = false;
  bool dispatched_ = false;
  bool responded_ = false;
  bool head_sent_ = false;  // the response's HEADERS went out: a reset after it is no longer premature
  bool end_requested_ = false;
  bool deferred_ = false;
  bool reset_ = false;  // RST_STREAM sent: nothing more is queued
  std::deque<std::shared_ptr<const std::string>> out_;
  size_t out_offset_ = 0;  // into out_.front()
  size_t queued_bytes_ = 0;
  Headers trailers_;
  std::function<void(uint32_t)> on_close_;
};

using Http2Handler = std::function<void(std::shared_ptr<Http2ServerStream> stream)>;

class Http2Server {
 public:
  struct Stats {
    uint64_t accepted = 0;
    uint64_t closed = 0;
    uint64_t handshake_timeouts = 0;
    uint64_t idle_timeouts = 0;
    uint64_t tls_failures = 0;
    uint64_t protocol_errors = 0;
    uint64_t requests = 0;
    uint64_t refused_connections = 0;  // over max_connections or max_connections_per_source
    uint64_t request_timeouts = 0;     // streams reset because their request did not arrive
    uint64_t refused_request_bytes = 0;  // streams refused over max_connection_request_bytes
    uint64_t slow_reader_resets = 0;   // streams reset over the unsent-bytes limits
    uint64_t reset_floods = 0;  // connections ended for resetting streams before their answers
    std::vector<std::string> recent_errors;  // the last few reasons a connection failed
  };

  Http2Server(EventLoop* loop, Http2ServerOptions options, Http2Handler handler);
  ~Http2Server();  // closes every connection at once
  Http2Server(const Http2Server&) = delete;
  Http2Server& operator=(const Http2Server&) = delete;

  // `tls` null means plaintext HTTP/2 with prior knowledge.
  Status ListenTcp(TcpListenerOptions options, std::shared_ptr<const TlsContext> tls);
  // Each accepted connection takes the source's current context (certificate rotation).
  Status ListenTcp(TcpListenerOptions options, std::shared_ptr<TlsContextSource> tls);
  Status ListenUnix(UnixListenerOptions options);
  int tcp_port() const;

  // Graceful: stop accepting, GOAWAY, let accepted streams finish; `done` runs when the last
  // connection has closed. EventLoop::Stop() calls this through a stop hook.
  void Shutdown(std::function<void()> done = nullptr);
  // Closes every connection now; open streams see NGHTTP2_CANCEL.
  void CloseAll();

  const Http2ServerOptions& options() const { return options_; }
  const Stats& stats() const { return stats_; }
  size_t connection_count() const { return connections_.size(); }
  // Connections open from `source` (ConnectionSource).
  size_t connections_from(const std::string& source) const;
  EventLoop* loop() const { return loop_; }

 private:
  friend class Http2ServerConnection;
  friend class Http2ServerStream;
  void Accept(uv_stream_t* server, std::shared_ptr<const TlsContext> tls);
  void Remove(Http2ServerConnection* conn, const Status& why);
  void NoteError(const Status& why);

  EventLoop* loop_;
  Http2ServerOptions options_;
  Http2Handler handler_;
  std::vector<std::unique_ptr<TcpListener>> tcp_listeners_;
  std::vector<std::unique_ptr<UnixListener>> unix_listeners_;
  std::unordered_set<Http2ServerConnection*> connections_;
  // What each source's connections hold together, for the per-source bounds.
  struct SourceUsage {
    size_t connections = 0;
    size_t request_bytes = 0;
    size_t unsent_bytes = 0;
  };
  std::unordered_map<std::string, SourceUsage> sources_;
  // Connections a limit ended (a reset flood), logged per source once a minute with a count.
  FailureLogByKey ended_by_limit_;
  bool shutting_down_ = false;
  std::vector<std::function<void()>> shutdown_done_;
  int stop_hook_ = 0;
  Stats stats_;
};

}  // namespace sigil::transport
