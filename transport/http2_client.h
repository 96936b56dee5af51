// Http2Client: one HTTP/2 client connection (TLS on TCP, or prior knowledge on a Unix socket)
// that multiplexes requests as streams. It connects at once; requests submitted before the
// connection is ready wait for it, and fail with UNAVAILABLE if it never becomes ready.
//
// Thread safety: loop thread only. The client and its streams are shared_ptr-owned by the
// caller; dropping the client closes the connection and fails its open streams.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "transport/event_loop.h"
#include "transport/http2.h"
#include "transport/socket_stream.h"
#include "transport/tls.h"

namespace sigil::transport {

struct Http2ClientOptions {
  std::string authority = "localhost";
  std::string server_name;  // SNI under TLS; empty sends none
  std::chrono::milliseconds connect_timeout{10'000};
  uint32_t initial_stream_window = 1 << 20;
  uint32_t connection_window = 16 << 20;
};

struct Http2ResponseHandler {
  // The response head. `end_stream` means no body follows (e.g. a gRPC Trailers-Only answer).
  std::function<void(int status, const Headers& headers, bool end_stream)> on_headers;
  std::function<void(std::string_view data)> on_data;
  // Last call. OK when the response ended normally (with `trailers`, possibly empty);
  // otherwise why it did not (stream reset, connection lost).
  std::function<void(const Status& status, const Headers& trailers)> on_close;
};

class Http2Client;

class Http2ClientStream {
 public:
  // RST_STREAM(CANCEL); on_close then reports CANCELLED.
  void Cancel();
  bool done() const { return done_; }

 private:
  friend class Http2Client;
  Http2Client* client_ = nullptr;
  int32_t id_ = 0;
  bool done_ = false;
  Headers request_headers_;  // pseudo-headers first
  std::string body_;
  size_t body_offset_ = 0;
  Http2ResponseHandler handler_;
  bool got_response_ = false;
  int retries_ = 0;
  int status_ = 0;
  Headers headers_;
  Headers trailers_;
};

class Http2Client : public std::enable_shared_from_this<Http2Client>,
                    private SocketStream::Delegate {
 public:
  static std::shared_ptr<Http2Client> Connect(EventLoop* loop, const Endpoint& endpoint,
                                              std::shared_ptr<const TlsContext> tls,
                                              Http2ClientOptions options = {});
  ~Http2Client() override;
  Http2Client(const Http2Client&) = delete;
  Http2Client& operator=(const Http2Client&) = delete;

  std::shared_ptr<Http2ClientStream> Submit(const std::string& method, const std::string& path,
                                            const Headers& headers, std::string body,
                                            Http2ResponseHandler handler);

  // False once the connection failed, closed or received GOAWAY: open a new client.
  bool usable() const { return !closed_ && !goaway_; }
  // True while streams submitted here have not ended; after a GOAWAY the server still answers
  // those it accepted.
  bool has_streams() const { return !closed_ && (!streams_.empty() || !pending_.empty()); }
  // The server as authenticated by TLS (its SPIFFE ID), once connected.
  const PeerInfo& peer() const { return peer_; }
  void Close();

 private:
  friend class Http2ClientStream;
  Http2Client(EventLoop* loop, Http2ClientOptions options);
  void Start(std::shared_ptr<Http2ClientStream> stream);
  void Finish(Http2ClientStream* stream, const Status& status);
  void FailAll(const Status& why);
  void Flush();

  void OnOpen() override;
  void OnBytes(std::span<const uint8_t> bytes) override;
  void OnWritable() override { Flush(); }
  void OnTimer() override;
  void OnClosed(const Status& why) override;

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* user);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnDataChunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user);
  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static ssize_t ReadBody(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                          uint32_t* data_flags, nghttp2_data_source* source, void* user);

  EventLoop* loop_;
  Http2ClientOptions options_;
  SocketStream* socket_ = nullptr;
  nghttp2_session* session_ = nullptr;
  PeerInfo peer_;
  bool closed_ = false;
  bool goaway_ = false;
  bool got_settings_ = false;  // requests wait for the server's limits before opening streams
  bool in_nghttp2_ = false;
  std::vector<std::shared_ptr<Http2ClientStream>> pending_;
  std::unordered_map<int32_t, std::shared_ptr<Http2ClientStream>> streams_;
  std::vector<uint8_t> out_;
};

}  // namespace sigil::transport

namespace sigil::transport {

struct Http2Response {
  int status = 0;
  Headers headers;
  std::string body;
};

// One request on a private event loop, waiting for the whole response; for CLIs and tests.
// UNAVAILABLE when the server cannot be reached, DEADLINE_EXCEEDED after `timeout`.
Result<Http2Response> Http2RequestBlocking(const Endpoint& endpoint, const std::string& method,
                                           const std::string& path, const Headers& headers,
                                           std::string body,
                                           std::shared_ptr<const TlsContext> tls = nullptr,
                                           std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace sigil::transport
