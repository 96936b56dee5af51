// gRPC over HTTP/2, as the gRPC wire protocol (PROTOCOL-HTTP2.md) specifies it, so stock gRPC
// clients (go-spiffe, py-spiffe, java-spiffe) talk to Sigil unchanged.
//
//  - messages: 1-byte compressed flag + 4-byte big-endian length + payload; only the
//    identity encoding is accepted (a compressed message is UNIMPLEMENTED)
//  - requests: POST, content-type application/grpc[+proto|…]; others get HTTP 415/405
//  - responses: :status 200, content-type application/grpc, messages, then trailers with
//    grpc-status (sigil::Code numbers are gRPC's) and a percent-encoded grpc-message; an error
//    before any message is a Trailers-Only response
//  - grpc-timeout sets a deadline; when it passes the call ends DEADLINE_EXCEEDED and the
//    handler sees cancellation, as it does when the client resets the stream
//
// Payloads are opaque bytes here; handlers (de)serialise with protobuf or anything else.
//
// Thread safety: GrpcRouter is configured before serving and then read on its loop.
// GrpcServerCall lives on its loop's thread, except Write() and Finish(), which may be called
// from any thread (they post to the loop when called elsewhere).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "transport/http2_server.h"

namespace sigil::transport {

inline constexpr size_t kGrpcDefaultMaxMessageBytes = 4 << 20;

// The 5-byte prefix and `message`.
std::string GrpcFrame(std::string_view message);

// A message can also be framed where it is built: serialize it after kGrpcFramePrefixBytes of
// room, then GrpcSealFrame writes the prefix there for the bytes after it. The frame is then
// written to calls as it is (GrpcServerCall::WriteFrame), shared, without a copy.
inline constexpr size_t kGrpcFramePrefixBytes = 5;
void GrpcSealFrame(std::string& frame);

// Splits a buffer of length-prefixed messages. Parsed messages are appended to `out`; bytes of
// an incomplete trailing message are left in `buffer` (streaming readers call again with more).
Status GrpcTakeMessages(std::string* buffer, std::vector<std::string>* out,
                        size_t max_message_bytes = kGrpcDefaultMaxMessageBytes);

// "100m", "5S", "1H": at most 8 digits and one unit of H M S m u n.
Result<std::chrono::nanoseconds> ParseGrpcTimeout(std::string_view value);
std::string FormatGrpcTimeout(std::chrono::nanoseconds timeout);

// grpc-message is percent-encoded outside printable ASCII, and '%' itself.
std::string PercentEncodeGrpcMessage(std::string_view message);
std::string PercentDecodeGrpcMessage(std::string_view encoded);

class GrpcServerCall : public std::enable_shared_from_this<GrpcServerCall> {
 public:
  ~GrpcServerCall();

  const std::string& method() const { return stream_->request().path; }
  // Every request header field; custom metadata keys are lower case.
  const Headers& metadata() const { return stream_->request().headers; }
  std::string_view Metadata(std::string_view key) const {
    return FindHeader(stream_->request().headers, key);
  }
  const PeerInfo& peer() const { return stream_->peer(); }
  EventLoop* loop() const { return stream_->loop(); }
  // When the request began: where the call's elapsed time starts.
  std::chrono::steady_clock::time_point started() const { return stream_->request_started(); }
  std::optional<std::chrono::steady_clock::time_point> deadline() const { return deadline_; }

  // True once the client cancelled, the deadline passed or the connection went away; further
  // writes are dropped.
  bool cancelled() const { return cancelled_; }
  // Runs on the loop when the call is cancelled (not when it finishes normally).
  void OnCancel(std::function<void()> fn) { on_cancel_.push_back(std::move(fn)); }

  // Before the first Write/Finish.
  void AddInitialMetadata(std::string key, std::string value);
  void AddTrailingMetadata(std::string key, std::string value);

  // One response message. A unary call takes exactly one before an OK Finish.
  void Write(std::string message);
  // The same for a message framed already (GrpcFrame, GrpcSealFrame): the frame is queued as
  // it is, shared with whoever else sends it, until its bytes leave for the socket.
  void WriteFrame(std::shared_ptr<const std::string> frame);
  // Ends the call with `status` in the trailers.
  void Finish(Status status);
  bool finished() const { return finished_; }

 private:
  friend class GrpcRouter;
  GrpcServerCall(std::shared_ptr<Http2ServerStream> stream, bool streaming)
      : stream_(std::move(stream)), streaming_(streaming) {}
  void StartDeadline(std::chrono::nanoseconds timeout);
  void StopDeadline();
  void OnStreamClosed(uint32_t error_code);
  void Cancel();
  void SendHeadersIfNeeded();
  static void OnDeadline(uv_timer_t* timer);

  std::shared_ptr<Http2ServerStream> stream_;
  bool streaming_;
  bool headers_sent_ = false;
  bool finished_ = false;
  bool cancelled_ = false;
  int messages_written_ = 0;
  Headers initial_metadata_;
  Headers trailing_metadata_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  uv_timer_t* deadline_timer_ = nullptr;
  std::shared_ptr<GrpcServerCall> keep_alive_;  // while the deadline timer is armed
  std::vector<std::function<void()>> on_cancel_;
};

// The handler gets the single request message; it answers through `call`, now or later.
using GrpcHandler = std::function<void(std::shared_ptr<GrpcServerCall> call, std::string request)>;

// Routes gRPC requests by path ("/package.Service/Method") to handlers.
class GrpcRouter {
 public:
  explicit GrpcRouter(size_t max_message_bytes = kGrpcDefaultMaxMessageBytes)
      : max_message_bytes_(max_message_bytes) {}

  void RegisterUnary(std::string method, GrpcHandler handler);
  void RegisterServerStreaming(std::string method, GrpcHandler handler);

  // Serves one complete HTTP/2 request; usable as (or from) an Http2Handler.
  void Handle(std::shared_ptr<Http2ServerStream> stream);
  Http2Handler AsHttp2Handler() {
    return [this](std::shared_ptr<Http2ServerStream> s) { Handle(std::move(s)); };
  }

 private:
  struct Method {
    GrpcHandler handler;
    bool streaming;
  };
  size_t max_message_bytes_;
  std::unordered_map<std::string, Method> methods_;
};

}  // namespace sigil::transport
