#include "transport/http2_server_connection.h"

#include <algorithm>
#include <cstring>

namespace sigil::transport {

namespace {
constexpr size_t kMaxWriteBacklog = 1 << 20;
// nghttp2's own limit on RST_STREAM frames received (default: 1,000 at once, then 33 a second)
// counts every reset, answered or not, and cut off real clients: grpcio lost calls after 1,000
// cancels, as did a grpc++ client reading one FetchX509SVID message and cancelling, 32 at a
// time. Premature resets are bounded by Http2ServerOptions instead; nghttp2's
// limit stays as a backstop far above the rate at which one connection's streams are answered
// (that grpc++ client reset 9,000 a second against agentd on 2 cores), where only resets of
// streams that no longer exist can reach it.
constexpr uint64_t kNghttp2ResetBurst = 100'000;
constexpr uint64_t kNghttp2ResetsPerSecond = 100'000;

RateLimit PrematureResetLimit(const Http2ServerOptions& options) {
  return {.per_second = options.premature_resets_per_second, .burst = options.premature_reset_burst};
}
}  // namespace

// ---- Http2ServerStream ----
void Http2ServerStream::Respond(int status, const Headers& headers, bool end_stream) {
  if (conn_ == nullptr || responded_) return;
  responded_ = true;
  Headers pseudo = {{":status", std::to_string(status)}};
  auto nv = ToNv(pseudo, headers);
  nghttp2_data_provider provider{};
  provider.source.ptr = this;
  provider.read_callback = &Http2ServerStream::ReadBody;
  if (end_stream) end_requested_ = true;
  int rc = nghttp2_submit_response(conn_->session(), id_, nv.data(), nv.size(),
                                   end_stream ? nullptr : &provider);
  if (rc != 0) {
    Reset(NGHTTP2_INTERNAL_ERROR);
    return;
  }
  conn_->Flush();
}

void Http2ServerStream::Write(std::string data) {
  if (conn_ == nullptr || !responded_ || end_requested_ || data.empty()) return;
  Write(std::make_shared<const std::string>(std::move(data)));
}

void Http2ServerStream::Write(std::shared_ptr<const std::string> data) {
  if (conn_ == nullptr || !responded_ || end_requested_ || reset_ || data == nullptr || data->empty()) return;
  if (conn_->server_ != nullptr) {
    const Http2ServerOptions& o = conn_->server_->options_;
    if (queued_bytes_ + data->size() > o.max_stream_unsent_bytes ||
        conn_->unsent_bytes_ + data->size() > o.max_connection_unsent_bytes ||
        (conn_->usage_ != nullptr && conn_->usage_->unsent_bytes + data->size() > o.max_source_unsent_bytes)) {
      conn_->server_->stats_.slow_reader_resets++;
      Reset(NGHTTP2_ENHANCE_YOUR_CALM);
      return;
    }
  }
  queued_bytes_ += data->size();
  conn_->AddUnsentBytes(data->size());
  out_.push_back(std::move(data));
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(conn_->session(), id_);
  }
  conn_->Flush();
}

void Http2ServerStream::End(Headers trailers) {
  if (conn_ == nullptr || !responded_ || end_requested_) return;
  end_requested_ = true;
  trailers_ = std::move(trailers);
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(conn_->session(), id_);
  }
  conn_->Flush();
}

void Http2ServerStream::Reset(uint32_t error_code) {
  if (conn_ == nullptr || reset_) return;
  reset_ = true;
  // What it queued is never sent now: it no longer counts against the connection.
  conn_->SubtractUnsentBytes(queued_bytes_);
  queued_bytes_ = 0;
  out_.clear();
  out_offset_ = 0;
  nghttp2_submit_rst_stream(conn_->session(), NGHTTP2_FLAG_NONE, id_, error_code);
  conn_->Flush();
}

void Http2ServerStream::MarkClosed(uint32_t error_code) {
  conn_ = nullptr;
  out_.clear();
  if (auto fn = std::move(on_close_)) {
    on_close_ = nullptr;
    fn(error_code);
  }
}

ssize_t Http2ServerStream::ReadBody(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                                    size_t length, uint32_t* data_flags,
                                    nghttp2_data_source* source, void*) {
  auto* st = static_cast<Http2ServerStream*>(source->ptr);
  size_t n = 0;
  while (n < length && !st->out_.empty()) {
    const std::string& front = *st->out_.front();
    size_t take = std::min(length - n, front.size() - st->out_offset_);
    std::memcpy(buf + n, front.data() + st->out_offset_, take);
    n += take;
    st->out_offset_ += take;
    if (st->out_offset_ == front.size()) {
      st->out_.pop_front();
      st->out_offset_ = 0;
    }
  }
  st->queued_bytes_ -= n;
  if (st->conn_ != nullptr) st->conn_->SubtractUnsentBytes(n);
  if (st->out_.empty()) {
    if (st->end_requested_) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!st->trailers_.empty()) {
        auto nv = ToNv({}, st->trailers_);
        if (nghttp2_submit_trailer(session, stream_id, nv.data(), nv.size()) == 0) {
          *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
      }
    } else if (n == 0) {
      st->deferred_ = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return static_cast<ssize_t>(n);
}

// ---- Http2ServerConnection ----

Http2ServerConnection::Http2ServerConnection(Http2Server* server, SocketStream* socket)
    : server_(server), socket_(socket), premature_resets_(PrematureResetLimit(server->options_)) {
  nghttp2_session_callbacks* cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cb, &OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &OnDataChunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &OnFrameRecv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &OnStreamClose);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, &OnInvalidFrame);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, &OnFrameSend);
  nghttp2_option* option;
  nghttp2_option_new(&option);
  nghttp2_option_set_stream_reset_rate_limit(option, kNghttp2ResetBurst, kNghttp2ResetsPerSecond);
  nghttp2_session_server_new2(&session_, cb, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(cb);

  const Http2ServerOptions& o = server_->options_;
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, o.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, o.initial_stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(o.max_header_list_bytes)},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(o.connection_window));
  socket_->ArmTimer(o.handshake_timeout);
}

Http2ServerConnection::~Http2ServerConnection() { nghttp2_session_del(session_); }

void Http2ServerConnection::OnOpen() {
  peer_ = std::make_shared<const PeerInfo>(socket_->peer());
  Flush();  // the server preface (SETTINGS)
}

void Http2ServerConnection::Fail(Status why) {
  if (failure_.ok()) failure_ = why;
  socket_->Close(std::move(why), true);
}

void Http2ServerConnection::OnBytes(std::span<const uint8_t> bytes) {
  in_nghttp2_ = true;
  ssize_t rc = nghttp2_session_mem_recv(session_, bytes.data(), bytes.size());
  in_nghttp2_ = false;
  if (rc < 0) {
    // nghttp2 has queued a GOAWAY naming the error where the protocol allows one.
    Flush();
    if (server_ && failure_.ok()) server_->stats_.protocol_errors++;
    Fail(InvalidArgumentError(std::string("HTTP/2 protocol error: ") +
                              nghttp2_strerror(static_cast<int>(rc))));
    return;
  }
  Flush();
}

void Http2ServerConnection::Flush() {
  if (in_nghttp2_ || socket_->closing()) return;
  in_nghttp2_ = true;
  out_.clear();
  while (socket_->write_backlog() + out_.size() < kMaxWriteBacklog) {
    const uint8_t* data;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      in_nghttp2_ = false;
      Fail(InternalError(std::string("HTTP/2 send: ") + nghttp2_strerror(static_cast<int>(n))));
      return;
    }
    if (n == 0) break;
    out_.insert(out_.end(), data, data + n);
  }
  in_nghttp2_ = false;
  socket_->Write(out_);
  ClearWriteBuffer(out_);
  if (socket_->closing()) return;
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
    socket_->Close(failure_, true);
  } else if (draining_ && streams_.empty() && socket_->write_backlog() == 0 &&
             !nghttp2_session_want_write(session_)) {
    socket_->Close(Status::Ok(), true);
  }
}

void Http2ServerConnection::Drain() {
  if (draining_) return;
  draining_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  Flush();
}

void Http2ServerConnection::UpdateTimer() {
  if (!got_preface_ || server_ == nullptr) return;  // the handshake timer is still running
  if (streams_.empty()) {
    socket_->ArmTimer(server_->options_.idle_timeout);
    return;
  }
  // Open streams keep a connection alive only while their requests keep arriving: the timer
  // follows the request that has been arriving longest.
  auto earliest = std::chrono::steady_clock::time_point::max();
  for (const auto& [id, st] : streams_) {
    if (!st->dispatched_ && !st->reset_) earliest = std::min(earliest, st->request_started_);
  }
  if (earliest == std::chrono::steady_clock::time_point::max()) {
    socket_->CancelTimer();
    return;
  }
  const auto left = earliest + server_->options_.request_timeout - std::chrono::steady_clock::now();
  socket_->ArmTimer(std::max(std::chrono::milliseconds(0), std::chrono::ceil<std::chrono::milliseconds>(left)));
}

void Http2ServerConnection::ResetOverdueRequests() {
  const auto now = std::chrono::steady_clock::now();
  // Collected first: a reset flushes, and a stream that closes leaves streams_.
  std::vector<std::shared_ptr<Http2ServerStream>> overdue;
  for (const auto& [id, st] : streams_) {
    if (!st->dispatched_ && !st->reset_ && now - st->request_started_ >= server_->options_.request_timeout) {
      overdue.push_back(st);
    }
  }
  for (const auto& st : overdue) {
    server_->stats_.request_timeouts++;
    st->Reset(NGHTTP2_CANCEL);
  }
}

void Http2ServerConnection::OnTimer() {
  if (!got_preface_) {
    if (server_) server_->stats_.handshake_timeouts++;
    Status why = DeadlineExceededError(
        socket_->is_open() ? "HTTP/2 preface not received within the handshake timeout"
                           : "TLS handshake not finished within the handshake timeout");
    failure_ = why;
    socket_->Close(std::move(why), false);
    return;
  }
  if (streams_.empty()) {
    if (server_) server_->stats_.idle_timeouts++;
    nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
    draining_ = true;
    Flush();
    if (!socket_->closing()) socket_->Close(Status::Ok(), true);
    return;
  }
  if (server_ == nullptr) return;
  ResetOverdueRequests();
  UpdateTimer();
}

void Http2ServerConnection::OnClosed(const Status& why) {
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, st] : streams) st->conn_ = nullptr;
  for (auto& [id, st] : streams) st->MarkClosed(NGHTTP2_CANCEL);
  if (server_) server_->Remove(this, why);
  delete this;
}

Http2ServerStream* Http2ServerConnection::Find(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

int Http2ServerConnection::OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame,
                                          void* user) {
  auto* self = static_cast<Http2ServerConnection*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto peer = self->peer_ ? self->peer_ : std::make_shared<const PeerInfo>(self->socket_->peer());
  std::shared_ptr<Http2ServerStream> st(
      new Http2ServerStream(self, self->socket_->loop(), frame->hd.stream_id, std::move(peer)));
  st->request_started_ = std::chrono::steady_clock::now();
  self->streams_[frame->hd.stream_id] = std::move(st);
  self->UpdateTimer();
  return 0;
}

int Http2ServerConnection::OnHeader(nghttp2_session*, const nghttp2_frame* frame,
                                    const uint8_t* name, size_t namelen, const uint8_t* value,
                                    size_t valuelen, uint8_t, void* user) {
  auto* self = static_cast<Http2ServerConnection*>(user);
  Http2ServerStream* st = self->Find(frame->hd.stream_id);
  if (st == nullptr || st->dispatched_) return 0;  // trailers of a request are ignored
  // The same accounting as SETTINGS_MAX_HEADER_LIST_SIZE: name + value + 32 per field.
  st->header_bytes_ += namelen + valuelen + 32;
  if (self->server_ && st->header_bytes_ > self->server_->options_.max_header_list_bytes) {
    st->headers_too_large_ = true;
  }
  if (st->headers_too_large_) return 0;
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string v(reinterpret_cast<const char*>(value), valuelen);
  Http2Request& r = st->request_;
  if (n == ":method") {
    r.method = std::move(v);
  } else if (n == ":path") {
    r.path = std::move(v);
  } else if (n == ":authority") {
    r.authority = std::move(v);
  } else if (n == ":scheme") {
    r.scheme = std::move(v);
  } else if (!n.empty() && n[0] != ':') {
    r.headers.emplace_back(std::string(n), std::move(v));
  }
  return 0;
}

int Http2ServerConnection::OnDataChunk(nghttp2_session*, uint8_t, int32_t stream_id,
                                       const uint8_t* data, size_t len, void* user) {
  auto* self = static_cast<Http2ServerConnection*>(user);
  Http2ServerStream* st = self->Find(stream_id);
  if (st == nullptr || st->body_too_large_ || st->headers_too_large_) return 0;
  if (self->server_ == nullptr) return 0;
  const Http2ServerOptions& o = self->server_->options_;
  if (st->request_.body.size() + len > o.max_request_body_bytes) {
    st->body_too_large_ = true;
    self->SubtractRequestBytes(st->request_.body.size());
    st->request_.body.clear();
    st->request_.body.shrink_to_fit();
    st->Respond(413, {{"content-type", "text/plain"}}, true);
    return 0;
  }
  if (self->request_bytes_ + len > o.max_connection_request_bytes ||
      (self->usage_ != nullptr && self->usage_->request_bytes + len > o.max_source_request_bytes)) {
    // Many streams each half-sending a large body, on one connection or on many: the one that
    // would pass the connection's or the source's share is refused, and what it held is freed.
    self->server_->stats_.refused_request_bytes++;
    st->body_too_large_ = true;
    self->SubtractRequestBytes(st->request_.body.size());
    st->request_.body.clear();
    st->request_.body.shrink_to_fit();
    st->Reset(NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  st->request_.body.append(reinterpret_cast<const char*>(data), len);
  self->AddRequestBytes(len);
  return 0;
}

void Http2ServerConnection::AddRequestBytes(size_t n) {
  request_bytes_ += n;
  if (usage_ != nullptr) usage_->request_bytes += n;
}

void Http2ServerConnection::SubtractRequestBytes(size_t n) {
  request_bytes_ -= n;
  if (usage_ != nullptr) usage_->request_bytes -= n;
}

void Http2ServerConnection::AddUnsentBytes(size_t n) {
  unsent_bytes_ += n;
  if (usage_ != nullptr) usage_->unsent_bytes += n;
}

void Http2ServerConnection::SubtractUnsentBytes(size_t n) {
  unsent_bytes_ -= n;
  if (usage_ != nullptr) usage_->unsent_bytes -= n;
}

int Http2ServerConnection::OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<Http2ServerConnection*>(user);
  if (!self->got_preface_ && frame->hd.type == NGHTTP2_SETTINGS) {
    // The client preface ends with its SETTINGS: the connection is established.
    self->got_preface_ = true;
    self->socket_->CancelTimer();
    self->UpdateTimer();
    return 0;
  }
  if (frame->hd.type == NGHTTP2_RST_STREAM) {
    // Called before nghttp2 closes the stream: it is still ours to look at.
    Http2ServerStream* reset = self->Find(frame->hd.stream_id);
    if (reset != nullptr && !reset->head_sent_) self->NotePrematureReset();
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  Http2ServerStream* st = self->Find(frame->hd.stream_id);
  if (st == nullptr || st->dispatched_) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && st->headers_too_large_) {
    st->dispatched_ = true;
    st->Respond(431, {{"content-type", "text/plain"}}, true);
    return 0;
  }
  if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 && !st->body_too_large_) {
    self->Dispatch(st);
  }
  return 0;
}

void Http2ServerConnection::Dispatch(Http2ServerStream* st) {
  st->dispatched_ = true;
  if (!server_) return;
  server_->stats_.requests++;
  server_->handler_(streams_[st->id_]);
}

void Http2ServerConnection::NotePrematureReset() {
  if (premature_resets_.TrySpend(1) || draining_ || server_ == nullptr) return;
  server_->stats_.reset_floods++;
  failure_ = ResourceExhaustedError(
      "the peer reset more streams before they were answered than premature_resets_per_second "
      "and premature_reset_burst allow");
  draining_ = true;
  // Flushed once nghttp2 returns; the connection closes after the GOAWAY is written.
  nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
}

int Http2ServerConnection::OnStreamClose(nghttp2_session*, int32_t stream_id,
                                         uint32_t error_code, void* user) {
  auto* self = static_cast<Http2ServerConnection*>(user);
  auto it = self->streams_.find(stream_id);
  if (it == self->streams_.end()) return 0;
  std::shared_ptr<Http2ServerStream> st = std::move(it->second);
  self->streams_.erase(it);
  self->SubtractRequestBytes(st->request_.body.size());
  self->SubtractUnsentBytes(st->queued_bytes_);
  st->MarkClosed(error_code);
  self->UpdateTimer();
  return 0;
}

int Http2ServerConnection::OnFrameSend(nghttp2_session*, const nghttp2_frame* frame,
                                       void* user) {
  auto* self = static_cast<Http2ServerConnection*>(user);
  if (frame->hd.type == NGHTTP2_HEADERS) {
    if (Http2ServerStream* st = self->Find(frame->hd.stream_id)) st->head_sent_ = true;
    return 0;
  }
  if (frame->hd.type != NGHTTP2_GOAWAY || frame->goaway.error_code == NGHTTP2_NO_ERROR) return 0;
  // nghttp2 detected a connection error and is ending the session with this GOAWAY.
  if (self->failure_.ok()) {
    if (self->server_) self->server_->stats_.protocol_errors++;
    self->failure_ = InvalidArgumentError(std::string("HTTP/2 protocol error: ") +
                                          nghttp2_http2_strerror(frame->goaway.error_code));
  }
  return 0;
}

int Http2ServerConnection::OnInvalidFrame(nghttp2_session*, const nghttp2_frame*, int lib_error,
                                          void* user) {
  auto* self = static_cast<Http2ServerConnection*>(user);
  if (self->server_) {
    self->server_->NoteError(InvalidArgumentError(std::string("invalid HTTP/2 frame: ") +
                                                  nghttp2_strerror(lib_error)));
  }
  return 0;
}

}  // namespace sigil::transport
