#include "transport/grpc_client.h"

#include <cstdlib>

#include "transport/grpc.h"

namespace sigil::transport {
namespace {

// gRPC's table for responses that carry no grpc-status (doc/http-grpc-status-mapping.md).
Code CodeForHttpStatus(int http_status) {
  switch (http_status) {
    case 400: return Code::kInternal;
    case 401: return Code::kUnauthenticated;
    case 403: return Code::kPermissionDenied;
    case 404: return Code::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504: return Code::kUnavailable;
    default: return Code::kUnknown;
  }
}

void StopTimer(uv_timer_t*& timer) {
  if (!timer) return;
  uv_close(reinterpret_cast<uv_handle_t*>(timer),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  timer = nullptr;
}

}  // namespace

GrpcClientCall::~GrpcClientCall() { StopTimer(deadline_timer_); }

void GrpcClientCall::Cancel() {
  if (finished_) return;
  Done(CancelledError("cancelled by the client"));
  if (stream_) stream_->Cancel();
}

void GrpcClientCall::Done(Status status) {
  if (finished_) return;
  finished_ = true;
  StopTimer(deadline_timer_);
  auto done = std::move(on_done_);
  on_done_ = nullptr;
  on_message_ = nullptr;
  if (done) done(std::move(status));
}

GrpcChannel::GrpcChannel(EventLoop* loop, Endpoint endpoint, std::shared_ptr<const TlsContext> tls,
                         Http2ClientOptions options)
    : loop_(loop), endpoint_(std::move(endpoint)), tls_(std::move(tls)),
      options_(std::move(options)) {}

std::shared_ptr<Http2Client> GrpcChannel::Connection() {
  std::erase_if(draining_, [](const auto& client) { return !client->has_streams(); });
  if (!client_ || !client_->usable()) {
    if (client_ && client_->has_streams()) draining_.push_back(std::move(client_));
    client_ = Http2Client::Connect(loop_, endpoint_, tls_, options_);
  }
  return client_;
}

std::shared_ptr<GrpcClientCall> GrpcChannel::CallUnary(const std::string& method,
                                                       std::string request,
                                                       const GrpcCallOptions& options,
                                                       UnaryDone done) {
  auto call = std::make_shared<GrpcClientCall>();
  GrpcClientCall* raw = call.get();
  call->on_message_ = [raw](std::string m) { raw->unary_response_ = std::move(m); };
  call->on_done_ = [raw, done = std::move(done)](Status st) {
    if (st.ok() && raw->messages_ != 1) {
      st = InternalError("unary call returned " + std::to_string(raw->messages_) + " messages");
    }
    if (!st.ok()) {
      done(std::move(st));
    } else {
      done(std::move(raw->unary_response_));
    }
  };
  return Start(method, std::move(request), options, std::move(call));
}

std::shared_ptr<GrpcClientCall> GrpcChannel::CallServerStreaming(
    const std::string& method, std::string request, const GrpcCallOptions& options,
    std::function<void(std::string)> on_message, std::function<void(Status)> on_done) {
  auto call = std::make_shared<GrpcClientCall>();
  call->streaming_ = true;
  call->on_message_ = std::move(on_message);
  call->on_done_ = std::move(on_done);
  return Start(method, std::move(request), options, std::move(call));
}

std::shared_ptr<GrpcClientCall> GrpcChannel::Start(const std::string& method, std::string request,
                                                   const GrpcCallOptions& options,
                                                   std::shared_ptr<GrpcClientCall> call) {
  call->max_message_bytes_ = options.max_message_bytes;
  Headers headers = {{"content-type", "application/grpc"},
                     {"te", "trailers"},
                     {"user-agent", "sigil-grpc/0.1"}};
  if (options.timeout) {
    headers.emplace_back("grpc-timeout", FormatGrpcTimeout(*options.timeout));
    call->deadline_timer_ = new uv_timer_t;
    uv_timer_init(loop_->uv(), call->deadline_timer_);
    call->deadline_timer_->data = call.get();
    uv_timer_start(
        call->deadline_timer_,
        [](uv_timer_t* t) {
          auto* c = static_cast<GrpcClientCall*>(t->data);
          auto stream = c->stream_;
          c->Done(DeadlineExceededError("deadline exceeded"));  // first: Cancel() reports too
          if (stream) stream->Cancel();
        },
        static_cast<uint64_t>(options.timeout->count()), 0);
  }
  headers.insert(headers.end(), options.metadata.begin(), options.metadata.end());

  // The stream's handler owns the call until it finishes, so a caller may drop its reference
  // and still get the completion callback; the cycle ends when the stream reports its close.
  std::shared_ptr<GrpcClientCall> owner = call;
  Http2ResponseHandler handler;
  handler.on_headers = [owner](int status, const Headers& h, bool end_stream) {
    const auto& c = owner;
    if (!c) return;
    c->http_status_ = status;
    if (end_stream) {
      c->trailing_metadata_ = h;  // Trailers-Only
    } else {
      c->initial_metadata_ = h;
    }
  };
  handler.on_data = [owner](std::string_view data) {
    const auto& c = owner;
    if (!c || c->finished_) return;
    c->buffer_.append(data);
    std::vector<std::string> messages;
    Status st = GrpcTakeMessages(&c->buffer_, &messages, c->max_message_bytes_);
    for (auto& m : messages) {
      if (c->finished_) return;
      ++c->messages_;
      if (c->on_message_) c->on_message_(std::move(m));
    }
    if (!st.ok()) {
      c->Done(st);
      if (c->stream_) c->stream_->Cancel();
    }
  };
  handler.on_close = [owner](const Status& status, const Headers& trailers) {
    const auto& c = owner;
    if (!c || c->finished_) return;
    if (!status.ok()) {
      c->Done(status);
      return;
    }
    if (!trailers.empty()) c->trailing_metadata_ = trailers;
    std::string_view code = FindHeader(c->trailing_metadata_, "grpc-status");
    if (code.empty()) {
      Code mapped = c->http_status_ == 200 ? Code::kInternal : CodeForHttpStatus(c->http_status_);
      c->Done(Status(mapped, "response without grpc-status (HTTP status " +
                                 std::to_string(c->http_status_) + ")"));
      return;
    }
    int n = std::atoi(std::string(code).c_str());
    if (n < 0 || n > 16) n = static_cast<int>(Code::kUnknown);
    std::string message =
        PercentDecodeGrpcMessage(FindHeader(c->trailing_metadata_, "grpc-message"));
    c->Done(n == 0 ? Status::Ok() : Status(static_cast<Code>(n), message));
  };
  call->stream_ = Connection()->Submit("POST", method, headers, GrpcFrame(request),
                                       std::move(handler));
  return call;
}

Result<std::string> GrpcUnaryBlocking(const Endpoint& endpoint, const std::string& method,
                                      std::string request, const GrpcCallOptions& options,
                                      std::shared_ptr<const TlsContext> tls) {
  EventLoop loop;
  std::optional<Result<std::string>> result;
  auto channel = std::make_unique<GrpcChannel>(&loop, endpoint, std::move(tls));
  std::shared_ptr<GrpcClientCall> call;
  loop.Post([&] {
    call = channel->CallUnary(method, std::move(request), options,
                              [&](Result<std::string> r) {
                                result = std::move(r);
                                loop.Post([&] {
                                  call.reset();
                                  channel.reset();
                                  loop.Stop();
                                });
                              });
  });
  loop.Run();
  if (!result) return InternalError("event loop ended before the call finished");
  return std::move(*result);
}

Status GrpcServerStreamingBlocking(const Endpoint& endpoint, const std::string& method,
                                   std::string request,
                                   const std::function<bool(std::string)>& on_message,
                                   const GrpcCallOptions& options,
                                   std::shared_ptr<const TlsContext> tls) {
  EventLoop loop;
  std::optional<Status> result;
  auto channel = std::make_unique<GrpcChannel>(&loop, endpoint, std::move(tls));
  std::shared_ptr<GrpcClientCall> call;
  bool stopped_by_caller = false;
  auto finish = [&](Status st) {
    if (result) return;
    result = stopped_by_caller ? Status::Ok() : std::move(st);
    loop.Post([&] {
      call.reset();
      channel.reset();
      loop.Stop();
    });
  };
  loop.Post([&] {
    call = channel->CallServerStreaming(
        method, std::move(request), options,
        [&](std::string m) {
          if (stopped_by_caller) return;
          if (!on_message(std::move(m))) {
            stopped_by_caller = true;
            loop.Post([&] {
              if (call) call->Cancel();
            });
          }
        },
        finish);
  });
  loop.Run();
  if (!result) return InternalError("event loop ended before the call finished");
  return *result;
}

}  // namespace sigil::transport
