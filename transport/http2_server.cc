#include "transport/http2_server.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "transport/http2_server_connection.h"

namespace sigil::transport {

namespace {
constexpr size_t kRecentErrors = 16;
}  // namespace

size_t OpenFileConnectionBudget() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
  const rlim_t reserve = 64 + limit.rlim_cur / 8;
  return limit.rlim_cur > reserve ? static_cast<size_t>(limit.rlim_cur - reserve) : 1;
}

Http2Server::Http2Server(EventLoop* loop, Http2ServerOptions options, Http2Handler handler)
    : loop_(loop),
      options_(std::move(options)),
      handler_(std::move(handler)),
      ended_by_limit_(LogLevel::kWarn, "connection ended by a listener limit", std::chrono::minutes(1)) {
  options_.max_connections = std::min(options_.max_connections, OpenFileConnectionBudget());
  stop_hook_ = loop_->AddStopHook([this](bool force) {
    if (force) {
      CloseAll();
    } else {
      Shutdown();
    }
  });
}

Http2Server::~Http2Server() {
  ended_by_limit_.Flush();
  loop_->RemoveStopHook(stop_hook_);
  tcp_listeners_.clear();
  unix_listeners_.clear();
  auto conns = connections_;
  connections_.clear();
  for (auto* c : conns) {
    c->Detach();
    c->Kill(CancelledError("server destroyed"));
  }
}

Status Http2Server::ListenTcp(TcpListenerOptions options, std::shared_ptr<const TlsContext> tls) {
  SIGIL_ASSIGN_OR_RETURN(auto listener,
                         TcpListener::Listen(loop_, std::move(options),
                                             [this, tls](uv_stream_t* s) { Accept(s, tls); }));
  tcp_listeners_.push_back(std::move(listener));
  return Status::Ok();
}

Status Http2Server::ListenTcp(TcpListenerOptions options, std::shared_ptr<TlsContextSource> tls) {
  SIGIL_ASSIGN_OR_RETURN(
      auto listener, TcpListener::Listen(loop_, std::move(options), [this, tls](uv_stream_t* s) {
        Accept(s, tls->Current());
      }));
  tcp_listeners_.push_back(std::move(listener));
  return Status::Ok();
}

Status Http2Server::ListenUnix(UnixListenerOptions options) {
  // A held peer process is a second descriptor per connection.
  if (options.vouch_for_peers) options_.max_connections = std::min(options_.max_connections, OpenFileConnectionBudget() / 2);
  SIGIL_ASSIGN_OR_RETURN(auto listener,
                         UnixListener::Listen(loop_, std::move(options),
                                              [this](uv_stream_t* s) { Accept(s, nullptr); }));
  unix_listeners_.push_back(std::move(listener));
  return Status::Ok();
}

int Http2Server::tcp_port() const {
  return tcp_listeners_.empty() ? 0 : tcp_listeners_.front()->port();
}

void Http2Server::Accept(uv_stream_t* server, std::shared_ptr<const TlsContext> tls) {
  if (shutting_down_) return;
  auto socket = SocketStream::Accept(loop_, server, std::move(tls), nullptr);
  if (!socket.ok()) {
    NoteError(socket.status());
    return;
  }
  const std::string source = ConnectionSource((*socket)->peer());
  SourceUsage& usage = sources_[source];
  if (connections_.size() >= options_.max_connections || usage.connections >= options_.max_connections_per_source) {
    // Accepted and closed at once: left in the backlog, it would hold the queue for everyone.
    stats_.refused_connections++;
    if (usage.connections == 0) sources_.erase(source);
    (*socket)->Abandon();
    return;
  }
  ++usage.connections;
  auto* conn = new Http2ServerConnection(this, *socket);
  conn->set_source(source);
  conn->usage_ = &usage;  // unordered_map nodes stay where they are until erased
  (*socket)->set_delegate(conn);
  connections_.insert(conn);
  stats_.accepted++;
  conn->Start();
}

std::string ConnectionSource(const PeerInfo& peer) {
  if (peer.credentials) return "uid:" + std::to_string(peer.credentials->uid);
  // "203.0.113.7:40112" or "[2001:db8::1]:40112": the address is what precedes the last colon.
  const size_t colon = peer.address.rfind(':');
  return colon == std::string::npos ? peer.address : peer.address.substr(0, colon);
}

size_t Http2Server::connections_from(const std::string& source) const {
  auto it = sources_.find(source);
  return it == sources_.end() ? 0 : it->second.connections;
}

void Http2Server::NoteError(const Status& why) {
  if (stats_.recent_errors.size() >= kRecentErrors) {
    stats_.recent_errors.erase(stats_.recent_errors.begin());
  }
  stats_.recent_errors.push_back(why.ToString());
}

void Http2Server::Remove(Http2ServerConnection* conn, const Status& why) {
  if (connections_.erase(conn) != 0) {
    auto it = sources_.find(conn->source());
    if (it != sources_.end()) {
      // What its streams still hold stops counting for the source with it.
      it->second.request_bytes -= conn->request_bytes_;
      it->second.unsent_bytes -= conn->unsent_bytes_;
      if (--it->second.connections == 0) sources_.erase(it);
    }
    conn->usage_ = nullptr;
  }
  stats_.closed++;
  if (!why.ok() && why.code() != Code::kUnavailable) {
    // Unavailable is the peer hanging up; everything else is worth a line.
    if (why.code() == Code::kUnauthenticated || why.code() == Code::kPermissionDenied) {
      stats_.tls_failures++;
    }
    if (why.code() == Code::kResourceExhausted) {
      ended_by_limit_.Failed(conn->source(), {{"source", conn->source()}, {"error", why.ToString()}});
    }
    NoteError(why);
  }
  if (shutting_down_ && connections_.empty()) {
    auto done = std::move(shutdown_done_);
    shutdown_done_.clear();
    for (auto& fn : done) fn();
  }
}

void Http2Server::Shutdown(std::function<void()> done) {
  shutting_down_ = true;
  tcp_listeners_.clear();
  unix_listeners_.clear();
  if (done) shutdown_done_.push_back(std::move(done));
  if (connections_.empty()) {
    auto fns = std::move(shutdown_done_);
    shutdown_done_.clear();
    for (auto& fn : fns) fn();
    return;
  }
  auto conns = connections_;
  for (auto* c : conns) c->Drain();
}

void Http2Server::CloseAll() {
  shutting_down_ = true;
  tcp_listeners_.clear();
  unix_listeners_.clear();
  auto conns = connections_;
  for (auto* c : conns) c->Kill(CancelledError("server closing"));
}

}  // namespace sigil::transport
