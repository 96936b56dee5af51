// One accepted connection of an Http2Server: an nghttp2 server session over a SocketStream,
// with its streams and what they hold against the server's limits. Private to transport/: the
// server (http2_server.cc) and the connection's own code (http2_server_connection.cc) share it.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/rate_limiter.h"
#include "transport/http2_server.h"

namespace sigil::transport {

// One accepted connection: an nghttp2 server session over a SocketStream. Deletes itself when
// the socket has closed.
class Http2ServerConnection : public SocketStream::Delegate {
 public:
  Http2ServerConnection(Http2Server* server, SocketStream* socket);
  ~Http2ServerConnection() override;

  void Start() { socket_->Start(); }
  void Flush();
  void Drain();
  void Kill(Status why) { socket_->Close(std::move(why), false); }
  nghttp2_session* session() { return session_; }
  void Detach() { server_ = nullptr; }
  void set_source(std::string source) { source_ = std::move(source); }
  const std::string& source() const { return source_; }

  // SocketStream::Delegate
  void OnOpen() override;
  void OnBytes(std::span<const uint8_t> bytes) override;
  void OnWritable() override { Flush(); }
  void OnTimer() override;
  void OnClosed(const Status& why) override;

 private:
  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* user);
  static int OnDataChunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static int OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnInvalidFrame(nghttp2_session*, const nghttp2_frame* frame, int lib_error,
                            void* user);
  void Dispatch(Http2ServerStream* stream);
  void NotePrematureReset();
  void UpdateTimer();
  void ResetOverdueRequests();
  Http2ServerStream* Find(int32_t id);
  void Fail(Status why);

  Http2Server* server_;
  SocketStream* socket_;
  nghttp2_session* session_ = nullptr;
  std::shared_ptr<const PeerInfo> peer_;
  std::unordered_map<int32_t, std::shared_ptr<Http2ServerStream>> streams_;
  std::vector<uint8_t> out_;
  bool in_nghttp2_ = false;
  bool got_preface_ = false;
  bool draining_ = false;
  Status failure_;
  TokenBucket premature_resets_;
  // Request bodies held by this connection's open streams, and response bytes its streams
  // queued that the peer has not taken; each change is counted for its source too.
  void AddRequestBytes(size_t n);
  void SubtractRequestBytes(size_t n);
  void AddUnsentBytes(size_t n);
  void SubtractUnsentBytes(size_t n);
  size_t request_bytes_ = 0;
  size_t unsent_bytes_ = 0;
  std::string source_;  // what it counts against in the per-source limits
  Http2Server::SourceUsage* usage_ = nullptr;  // the source's; null once removed from the server

  friend class Http2Server;
  friend class Http2ServerStream;
};

}  // namespace sigil::transport
