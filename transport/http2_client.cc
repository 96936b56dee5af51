#include "transport/http2_client.h"

#include <algorithm>
#include <cstring>

namespace sigil::transport {
namespace {
constexpr size_t kMaxWriteBacklog = 1 << 20;
}  // namespace

void Http2ClientStream::Cancel() {
  if (done_ || client_ == nullptr) return;
  Http2Client* client = client_;
  if (id_ == 0) {
    auto& p = client->pending_;
    p.erase(std::remove_if(p.begin(), p.end(), [this](auto& s) { return s.get() == this; }),
            p.end());
    client->Finish(this, CancelledError("cancelled before it was sent"));
    return;
  }
  nghttp2_submit_rst_stream(client->session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
  client->Flush();
}

std::shared_ptr<Http2Client> Http2Client::Connect(EventLoop* loop, const Endpoint& endpoint,
                                                  std::shared_ptr<const TlsContext> tls,
                                                  Http2ClientOptions options) {
  std::shared_ptr<Http2Client> self(new Http2Client(loop, std::move(options)));
  self->peer_.address = endpoint.ToString();
  self->socket_ = SocketStream::Connect(loop, endpoint, std::move(tls),
                                        self->options_.server_name, self.get());
  if (!self->closed_) self->socket_->ArmTimer(self->options_.connect_timeout);
  return self;
}

Http2Client::Http2Client(EventLoop* loop, Http2ClientOptions options)
    : loop_(loop), options_(std::move(options)) {
  nghttp2_session_callbacks* cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_header_callback(cb, &OnHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &OnFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &OnStreamClose);
  nghttp2_session_client_new(&session_, cb, this);
  nghttp2_session_callbacks_del(cb);
}

Http2Client::~Http2Client() {
  if (socket_) socket_->Abandon();
  socket_ = nullptr;
  closed_ = true;
  FailAll(CancelledError("HTTP/2 client destroyed"));
  nghttp2_session_del(session_);
}

void Http2Client::Close() {
  if (socket_ && !closed_) {
    nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
    Flush();
    if (socket_) socket_->Close(CancelledError("closed by the client"), true);
  }
}

std::shared_ptr<Http2ClientStream> Http2Client::Submit(const std::string& method,
                                                       const std::string& path,
                                                       const Headers& headers, std::string body,
                                                       Http2ResponseHandler handler) {
  auto s = std::make_shared<Http2ClientStream>();
  s->client_ = this;
  s->request_headers_ = {{":method", method},
                         {":scheme", "http"},  // "https" once TLS is known to be up
                         {":authority", options_.authority},
                         {":path", path}};
  s->request_headers_.insert(s->request_headers_.end(), headers.begin(), headers.end());
  s->body_ = std::move(body);
  s->handler_ = std::move(handler);
  if (!usable()) {
    Finish(s.get(), UnavailableError("HTTP/2 connection to " + peer_.address + " is closed"));
    return s;
  }
  if (socket_ && socket_->is_open() && got_settings_) {
    Start(s);
  } else {
    pending_.push_back(s);
  }
  return s;
}

void Http2Client::Start(std::shared_ptr<Http2ClientStream> s) {
  if (!peer_.tls_version.empty()) s->request_headers_[1].second = "https";
  std::vector<nghttp2_nv> nv = ToNv({}, s->request_headers_);
  nghttp2_data_provider provider{};
  provider.source.ptr = s.get();
  provider.read_callback = &Http2Client::ReadBody;
  int32_t id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(),
                                      s->body_.empty() && s->request_headers_[0].second == "GET"
                                          ? nullptr
                                          : &provider,
                                      s.get());
  if (id < 0) {
    Finish(s.get(), UnavailableError(std::string("cannot open an HTTP/2 stream: ") +
                                     nghttp2_strerror(id)));
    return;
  }
  s->id_ = id;
  streams_[id] = std::move(s);
  Flush();
}

ssize_t Http2Client::ReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                              uint32_t* data_flags, nghttp2_data_source* source, void*) {
  auto* s = static_cast<Http2ClientStream*>(source->ptr);
  size_t n = std::min(length, s->body_.size() - s->body_offset_);
  std::memcpy(buf, s->body_.data() + s->body_offset_, n);
  s->body_offset_ += n;
  if (s->body_offset_ == s->body_.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

void Http2Client::Finish(Http2ClientStream* s, const Status& status) {
  if (s->done_) return;
  s->done_ = true;
  s->client_ = nullptr;
  auto on_close = std::move(s->handler_.on_close);
  s->handler_ = {};
  if (on_close) on_close(status, s->trailers_);
}

void Http2Client::FailAll(const Status& why) {
  auto pending = std::move(pending_);
  pending_.clear();
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& s : pending) Finish(s.get(), why);
  for (auto& [id, s] : streams) Finish(s.get(), why);
}

void Http2Client::OnOpen() {
  socket_->CancelTimer();
  peer_ = socket_->peer();
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, options_.initial_stream_window},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(options_.connection_window));
  Flush();
}

void Http2Client::OnTimer() {
  if (socket_ && !socket_->is_open()) {
    socket_->Close(DeadlineExceededError("connecting to " + peer_.address + " timed out"), false);
  }
}

void Http2Client::OnBytes(std::span<const uint8_t> bytes) {
  auto self = shared_from_this();  // a callback may drop the caller's last reference
  in_nghttp2_ = true;
  ssize_t rc = nghttp2_session_mem_recv(session_, bytes.data(), bytes.size());
  in_nghttp2_ = false;
  if (rc < 0) {
    Flush();
    if (socket_) {
      socket_->Close(InternalError(std::string("HTTP/2 protocol error from server: ") +
                                   nghttp2_strerror(static_cast<int>(rc))),
                     true);
    }
    return;
  }
  Flush();
}

void Http2Client::Flush() {
  if (in_nghttp2_ || socket_ == nullptr || socket_->closing() || !socket_->is_open()) return;
  in_nghttp2_ = true;
  out_.clear();
  while (socket_->write_backlog() + out_.size() < kMaxWriteBacklog) {
    const uint8_t* data;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n <= 0) break;
    out_.insert(out_.end(), data, data + n);
  }
  in_nghttp2_ = false;
  socket_->Write(out_);
  ClearWriteBuffer(out_);
  if (!socket_->closing() && !nghttp2_session_want_read(session_) &&
      !nghttp2_session_want_write(session_)) {
    socket_->Close(UnavailableError("HTTP/2 session with " + peer_.address + " ended"), true);
  }
}

void Http2Client::OnClosed(const Status& why) {
  auto self = shared_from_this();
  socket_ = nullptr;
  closed_ = true;
  FailAll(why.ok() ? UnavailableError("connection to " + peer_.address + " closed")
                   : Status(why.code() == Code::kDeadlineExceeded ? Code::kUnavailable
                                                                  : why.code(),
                            why.message()));
}

int Http2Client::OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                          size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                          void* user) {
  auto* self = static_cast<Http2Client*>(user);
  auto it = self->streams_.find(frame->hd.stream_id);
  if (it == self->streams_.end()) return 0;
  Http2ClientStream* s = it->second.get();
  std::string n(reinterpret_cast<const char*>(name), namelen);
  std::string v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":status") {
    s->status_ = std::atoi(v.c_str());
    return 0;
  }
  if (frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
    s->headers_.emplace_back(std::move(n), std::move(v));
  } else {
    s->trailers_.emplace_back(std::move(n), std::move(v));
  }
  return 0;
}

int Http2Client::OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<Http2Client*>(user);
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    self->goaway_ = true;
    return 0;
  }
  if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 &&
      !self->got_settings_) {
    // Opening streams before the server's SETTINGS would race its MAX_CONCURRENT_STREAMS;
    // from here on nghttp2 queues requests beyond the limit itself.
    self->got_settings_ = true;
    auto pending = std::move(self->pending_);
    self->pending_.clear();
    for (auto& s : pending) self->Start(std::move(s));
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_RESPONSE) return 0;
  auto it = self->streams_.find(frame->hd.stream_id);
  if (it == self->streams_.end()) return 0;
  Http2ClientStream* s = it->second.get();
  s->got_response_ = true;
  if (s->handler_.on_headers) {
    s->handler_.on_headers(s->status_, s->headers_,
                           (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
  }
  return 0;
}

int Http2Client::OnDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                             size_t len, void* user) {
  auto* self = static_cast<Http2Client*>(user);
  auto it = self->streams_.find(stream_id);
  if (it == self->streams_.end() || it->second->done_) return 0;
  if (it->second->handler_.on_data) {
    it->second->handler_.on_data(std::string_view(reinterpret_cast<const char*>(data), len));
  }
  return 0;
}

int Http2Client::OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                               void* user) {
  auto* self = static_cast<Http2Client*>(user);
  auto it = self->streams_.find(stream_id);
  if (it == self->streams_.end()) return 0;
  std::shared_ptr<Http2ClientStream> s = std::move(it->second);
  self->streams_.erase(it);
  if (error_code == NGHTTP2_REFUSED_STREAM && !s->got_response_ && s->retries_ < 3 &&
      self->usable()) {
    // A refused stream was not processed (RFC 9113 §8.7), so sending it again is safe.
    ++s->retries_;
    s->id_ = 0;
    s->body_offset_ = 0;
    s->headers_.clear();
    s->trailers_.clear();
    self->Start(std::move(s));
    return 0;
  }
  if (error_code == NGHTTP2_NO_ERROR) {
    self->Finish(s.get(), Status::Ok());
  } else if (error_code == NGHTTP2_CANCEL) {
    self->Finish(s.get(), CancelledError("stream cancelled"));
  } else if (error_code == NGHTTP2_REFUSED_STREAM) {
    self->Finish(s.get(), UnavailableError("server refused the stream"));
  } else {
    self->Finish(s.get(), InternalError(std::string("stream reset: ") +
                                        nghttp2_http2_strerror(error_code)));
  }
  return 0;
}

}  // namespace sigil::transport

namespace sigil::transport {

Result<Http2Response> Http2RequestBlocking(const Endpoint& endpoint, const std::string& method,
                                           const std::string& path, const Headers& headers,
                                           std::string body, std::shared_ptr<const TlsContext> tls,
                                           std::chrono::milliseconds timeout) {
  EventLoop loop;
  Http2ClientOptions options;
  options.connect_timeout = timeout;
  std::optional<Result<Http2Response>> result;
  Http2Response response;
  std::shared_ptr<Http2Client> client;
  std::shared_ptr<Http2ClientStream> stream;
  uv_timer_t* timer = new uv_timer_t;
  auto finish = [&](Result<Http2Response> outcome) {
    if (result) return;
    result = std::move(outcome);
    loop.Post([&] {
      stream.reset();
      if (client) client->Close();
      client.reset();
      uv_close(reinterpret_cast<uv_handle_t*>(timer), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      loop.Stop();
    });
  };
  loop.Post([&] {
    uv_timer_init(loop.uv(), timer);
    timer->data = &finish;
    uv_timer_start(
        timer,
        [](uv_timer_t* t) {
          (*static_cast<decltype(finish)*>(t->data))(
              Status(Code::kDeadlineExceeded, "no response within the time allowed"));
        },
        static_cast<uint64_t>(timeout.count()), 0);
    client = Http2Client::Connect(&loop, endpoint, std::move(tls), options);
    Http2ResponseHandler handler;
    handler.on_headers = [&](int status, const Headers& h, bool) {
      response.status = status;
      response.headers = h;
    };
    handler.on_data = [&](std::string_view data) { response.body.append(data); };
    handler.on_close = [&](const Status& status, const Headers&) {
      if (!status.ok()) {
        finish(status);
      } else {
        finish(std::move(response));
      }
    };
    stream = client->Submit(method, path, headers, std::move(body), std::move(handler));
  });
  loop.Run();
  if (!result) return InternalError("event loop ended before the request finished");
  return std::move(*result);
}

}  // namespace sigil::transport
