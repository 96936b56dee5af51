#include "transport/grpc.h"

#include <charconv>

namespace sigil::transport {
namespace {

constexpr std::string_view kContentType = "application/grpc";

void CloseTimer(uv_timer_t* timer) {
  uv_close(reinterpret_cast<uv_handle_t*>(timer),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

Headers StatusTrailers(const Status& status, const Headers& extra) {
  Headers t = {{"grpc-status", std::to_string(static_cast<int>(status.code()))}};
  if (!status.ok()) t.emplace_back("grpc-message", PercentEncodeGrpcMessage(status.message()));
  t.insert(t.end(), extra.begin(), extra.end());
  return t;
}

}  // namespace

std::string GrpcFrame(std::string_view message) {
  std::string out;
  out.reserve(kGrpcFramePrefixBytes + message.size());
  out.resize(kGrpcFramePrefixBytes);
  out.append(message);
  GrpcSealFrame(out);
  return out;
}

void GrpcSealFrame(std::string& frame) {
  const uint32_t n = static_cast<uint32_t>(frame.size() - kGrpcFramePrefixBytes);
  frame[0] = '\0';
  frame[1] = static_cast<char>(n >> 24);
  frame[2] = static_cast<char>(n >> 16);
  frame[3] = static_cast<char>(n >> 8);
  frame[4] = static_cast<char>(n);
}

Status GrpcTakeMessages(std::string* buffer, std::vector<std::string>* out,
                        size_t max_message_bytes) {
  size_t pos = 0;
  while (buffer->size() - pos >= 5) {
    auto b = [&](size_t i) { return static_cast<uint8_t>((*buffer)[pos + i]); };
    uint8_t flag = b(0);
    uint32_t len = (uint32_t{b(1)} << 24) | (uint32_t{b(2)} << 16) | (uint32_t{b(3)} << 8) | b(4);
    if (flag > 1) {
      return InternalError("gRPC message has an invalid compressed flag " + std::to_string(flag));
    }
    if (flag == 1) {
      return UnimplementedError("compressed gRPC messages are not supported (use identity)");
    }
    if (len > max_message_bytes) {
      return ResourceExhaustedError("gRPC message of " + std::to_string(len) +
                                    " bytes exceeds the limit of " +
                                    std::to_string(max_message_bytes));
    }
    if (buffer->size() - pos - 5 < len) break;
    out->emplace_back(buffer->substr(pos + 5, len));
    pos += 5 + len;
  }
  buffer->erase(0, pos);
  return Status::Ok();
}

Result<std::chrono::nanoseconds> ParseGrpcTimeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) {
    return InvalidArgumentError("grpc-timeout '" + std::string(value) + "' is malformed");
  }
  int64_t n = 0;
  auto digits = value.substr(0, value.size() - 1);
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || p != digits.data() + digits.size() || n < 0) {
    return InvalidArgumentError("grpc-timeout '" + std::string(value) + "' has a bad number");
  }
  using namespace std::chrono;
  // Eight digits of hours is 11,000 years, beyond what nanoseconds hold; any timeout longer than
  // ten years means "no deadline the call will reach" and is clamped there, compared in the
  // header's own unit so that nothing overflows.
  constexpr nanoseconds kLongest = hours(24 * 365 * 10);
  auto clamped = [&](auto unit) -> nanoseconds {
    using Unit = decltype(unit);
    if (n > duration_cast<Unit>(kLongest).count()) return kLongest;
    return duration_cast<nanoseconds>(Unit(n));
  };
  switch (value.back()) {
    case 'H': return clamped(hours());
    case 'M': return clamped(minutes());
    case 'S': return clamped(seconds());
    case 'm': return clamped(milliseconds());
    case 'u': return clamped(microseconds());
    case 'n': return nanoseconds(n);
    default:
      return InvalidArgumentError("grpc-timeout '" + std::string(value) + "' has an unknown unit");
  }
}

std::string FormatGrpcTimeout(std::chrono::nanoseconds timeout) {
  // The spec allows 8 digits; pick the finest unit that fits.
  int64_t n = std::max<int64_t>(timeout.count(), 0);
  const std::pair<int64_t, char> units[] = {{1, 'n'}, {1000, 'u'}, {1000'000, 'm'},
                                            {1000'000'000, 'S'}, {60'000'000'000, 'M'},
                                            {3600'000'000'000, 'H'}};
  for (auto [div, unit] : units) {
    int64_t v = (n + div - 1) / div;
    if (v < 100'000'000) return std::to_string(v) + unit;
  }
  return "99999999H";
}

std::string PercentEncodeGrpcMessage(std::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : message) {
    auto u = static_cast<uint8_t>(c);
    if (u >= 0x20 && u <= 0x7e && c != '%') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

std::string PercentDecodeGrpcMessage(std::string_view encoded) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] == '%' && i + 2 < encoded.size() &&
        hex(encoded[i + 1]) >= 0 && hex(encoded[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(encoded[i + 1]) * 16 + hex(encoded[i + 2])));
      i += 2;
    } else {
      out.push_back(encoded[i]);  // a malformed escape is kept as is, as gRPC does
    }
  }
  return out;
}

// ---- GrpcServerCall ----

GrpcServerCall::~GrpcServerCall() {
  if (deadline_timer_) CloseTimer(deadline_timer_);
}

void GrpcServerCall::AddInitialMetadata(std::string key, std::string value) {
  if (!headers_sent_) initial_metadata_.emplace_back(std::move(key), std::move(value));
}

void GrpcServerCall::AddTrailingMetadata(std::string key, std::string value) {
  if (!finished_) trailing_metadata_.emplace_back(std::move(key), std::move(value));
}

void GrpcServerCall::SendHeadersIfNeeded() {
  if (headers_sent_) return;
  headers_sent_ = true;
  Headers h = {{"content-type", std::string(kContentType)}};
  h.insert(h.end(), initial_metadata_.begin(), initial_metadata_.end());
  stream_->Respond(200, h, false);
}

void GrpcServerCall::Write(std::string message) {
  WriteFrame(std::make_shared<const std::string>(GrpcFrame(message)));
}

void GrpcServerCall::WriteFrame(std::shared_ptr<const std::string> frame) {
  if (!loop()->InLoopThread()) {
    loop()->Post([self = shared_from_this(), f = std::move(frame)]() mutable {
      self->WriteFrame(std::move(f));
    });
    return;
  }
  if (finished_ || cancelled_) return;
  if (!streaming_ && messages_written_ == 1) {
    Finish(InternalError("a unary call answered with more than one message"));
    return;
  }
  ++messages_written_;
  SendHeadersIfNeeded();
  stream_->Write(std::move(frame));
}

void GrpcServerCall::Finish(Status status) {
  if (!loop()->InLoopThread()) {
    loop()->Post([self = shared_from_this(), s = std::move(status)]() mutable {
      self->Finish(std::move(s));
    });
    return;
  }
  if (finished_) return;
  if (status.ok() && !streaming_ && messages_written_ == 0) {
    status = InternalError("a unary call finished without a response message");
  }
  finished_ = true;
  StopDeadline();
  if (!headers_sent_) {
    // Trailers-Only: the status rides in the only HEADERS frame.
    headers_sent_ = true;
    Headers h = {{"content-type", std::string(kContentType)}};
    h.insert(h.end(), initial_metadata_.begin(), initial_metadata_.end());
    Headers t = StatusTrailers(status, trailing_metadata_);
    h.insert(h.end(), t.begin(), t.end());
    stream_->Respond(200, h, true);
    return;
  }
  stream_->End(StatusTrailers(status, trailing_metadata_));
}

void GrpcServerCall::StartDeadline(std::chrono::nanoseconds timeout) {
  deadline_ = std::chrono::steady_clock::now() + timeout;
  deadline_timer_ = new uv_timer_t;
  uv_timer_init(loop()->uv(), deadline_timer_);
  deadline_timer_->data = this;
  keep_alive_ = shared_from_this();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
  uv_timer_start(deadline_timer_, &GrpcServerCall::OnDeadline, static_cast<uint64_t>(ms), 0);
}

void GrpcServerCall::StopDeadline() {
  if (!deadline_timer_) return;
  CloseTimer(deadline_timer_);
  deadline_timer_ = nullptr;
  keep_alive_.reset();  // may destroy this object: callers hold their own reference
}

void GrpcServerCall::OnDeadline(uv_timer_t* timer) {
  auto self = static_cast<GrpcServerCall*>(timer->data)->shared_from_this();
  self->Finish(DeadlineExceededError("deadline exceeded"));
  self->Cancel();
}

void GrpcServerCall::OnStreamClosed(uint32_t error_code) {
  auto self = shared_from_this();
  StopDeadline();
  if (error_code != 0 || !finished_) Cancel();
}

void GrpcServerCall::Cancel() {
  if (cancelled_) return;
  cancelled_ = true;
  auto fns = std::move(on_cancel_);
  on_cancel_.clear();
  for (auto& fn : fns) fn();
}

// ---- GrpcRouter ----

void GrpcRouter::RegisterUnary(std::string method, GrpcHandler handler) {
  methods_[std::move(method)] = Method{std::move(handler), false};
}

void GrpcRouter::RegisterServerStreaming(std::string method, GrpcHandler handler) {
  methods_[std::move(method)] = Method{std::move(handler), true};
}

void GrpcRouter::Handle(std::shared_ptr<Http2ServerStream> stream) {
  const Http2Request& req = stream->request();
  std::string_view content_type = FindHeader(req.headers, "content-type");
  if (!content_type.starts_with(kContentType) ||
      (content_type.size() > kContentType.size() && content_type[kContentType.size()] != '+' &&
       content_type[kContentType.size()] != ';')) {
    stream->Respond(415, {{"content-type", "text/plain"}}, true);
    return;
  }
  if (req.method != "POST") {
    stream->Respond(405, {{"allow", "POST"}}, true);
    return;
  }
  auto it = methods_.find(req.path);
  bool streaming = it != methods_.end() && it->second.streaming;
  std::shared_ptr<GrpcServerCall> call(new GrpcServerCall(stream, streaming));
  stream->SetOnClose([call](uint32_t code) { call->OnStreamClosed(code); });
  if (it == methods_.end()) {
    call->Finish(UnimplementedError("unknown method " + req.path));
    return;
  }
  if (std::string_view t = FindHeader(req.headers, "grpc-timeout"); !t.empty()) {
    auto timeout = ParseGrpcTimeout(t);
    if (!timeout.ok()) {
      call->Finish(timeout.status());
      return;
    }
    call->StartDeadline(*timeout);
  }
  std::string body = req.body;
  std::vector<std::string> messages;
  Status parsed = GrpcTakeMessages(&body, &messages, max_message_bytes_);
  if (parsed.ok() && (messages.size() != 1 || !body.empty())) {
    parsed = InvalidArgumentError("expected exactly one request message, got " +
                                  std::to_string(messages.size()) +
                                  (body.empty() ? "" : " and a truncated one"));
  }
  if (!parsed.ok()) {
    call->Finish(parsed);
    return;
  }
  it->second.handler(call, std::move(messages[0]));
}

}  // namespace sigil::transport
