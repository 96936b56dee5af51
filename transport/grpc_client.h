// A gRPC client over Http2Client: unary and server-streaming calls, enough for Sigil's own
// CLIs to call the Workload API on a Unix socket (or serverd over mutual TLS). Wire format as
// in grpc.h. A call's status comes from grpc-status/grpc-message, or from the HTTP status or
// stream reset when the server sent none, mapped as gRPC's HTTP-to-status table says.
//
// Thread safety: GrpcChannel and its calls belong to one loop's thread. The *Blocking helpers
// run a private loop on the calling thread and may be called from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "transport/event_loop.h"
#include "transport/http2.h"
#include "transport/http2_client.h"
#include "transport/socket_stream.h"
#include "transport/tls.h"

namespace sigil::transport {

struct GrpcCallOptions {
  Headers metadata;  // lower-case keys
  std::optional<std::chrono::milliseconds> timeout;
  size_t max_message_bytes = 4 << 20;
};

// A call in progress. Dropping the handle does not cancel it (the completion callback still
// runs); Cancel() does.
class GrpcClientCall {
 public:
  ~GrpcClientCall();
  // Cancels the call (RST_STREAM CANCEL); it then finishes with CANCELLED.
  void Cancel();
  const Headers& initial_metadata() const { return initial_metadata_; }
  const Headers& trailing_metadata() const { return trailing_metadata_; }

 private:
  friend class GrpcChannel;
  void Done(Status status);

  std::shared_ptr<Http2ClientStream> stream_;
  bool finished_ = false;
  bool streaming_ = false;
  int messages_ = 0;
  int http_status_ = 0;
  std::string buffer_;
  size_t max_message_bytes_ = 0;
  Headers initial_metadata_;
  Headers trailing_metadata_;
  std::string unary_response_;
  std::function<void(std::string)> on_message_;
  std::function<void(Status)> on_done_;
  uv_timer_t* deadline_timer_ = nullptr;
};

class GrpcChannel {
 public:
  GrpcChannel(EventLoop* loop, Endpoint endpoint, std::shared_ptr<const TlsContext> tls = nullptr,
              Http2ClientOptions options = {});

  using UnaryDone = std::function<void(Result<std::string> response)>;
  std::shared_ptr<GrpcClientCall> CallUnary(const std::string& method, std::string request,
                                            const GrpcCallOptions& options, UnaryDone done);
  std::shared_ptr<GrpcClientCall> CallServerStreaming(const std::string& method,
                                                      std::string request,
                                                      const GrpcCallOptions& options,
                                                      std::function<void(std::string)> on_message,
                                                      std::function<void(Status)> on_done);

 private:
  std::shared_ptr<GrpcClientCall> Start(const std::string& method, std::string request,
                                        const GrpcCallOptions& options,
                                        std::shared_ptr<GrpcClientCall> call);
  std::shared_ptr<Http2Client> Connection();

  EventLoop* loop_;
  Endpoint endpoint_;
  std::shared_ptr<const TlsContext> tls_;
  Http2ClientOptions options_;
  std::shared_ptr<Http2Client> client_;
  // Replaced clients still finishing calls their server accepted before its GOAWAY.
  std::vector<std::shared_ptr<Http2Client>> draining_;
};

// One unary call on a private event loop; for CLIs.
Result<std::string> GrpcUnaryBlocking(const Endpoint& endpoint, const std::string& method,
                                      std::string request, const GrpcCallOptions& options = {},
                                      std::shared_ptr<const TlsContext> tls = nullptr);

// One server-streaming call on a private event loop. `on_message` returns false to stop (the
// call is then cancelled and the result is OK).
Status GrpcServerStreamingBlocking(const Endpoint& endpoint, const std::string& method,
                                   std::string request,
                                   const std::function<bool(std::string)>& on_message,
                                   const GrpcCallOptions& options = {},
                                   std::shared_ptr<const TlsContext> tls = nullptr);

}  // namespace sigil::transport
