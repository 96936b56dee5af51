#include "transport/plain_http_server.h"

#include "transport/http2_server.h"
#include "transport/socket_stream.h"

namespace sigil::transport {

namespace {

constexpr size_t kMaxRequestBytes = 8 * 1024;

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

}  // namespace

class PlainHttpServer::Connection final : public SocketStream::Delegate {
 public:
  Connection(PlainHttpServer* server, std::string source) : server_(server), source_(std::move(source)) {}
  SocketStream* stream = nullptr;

  void OnOpen() override {}
  void OnTimer() override {
    if (answered_) return;
    answered_ = true;
    stream->Close(DeadlineExceededError("no complete request within the request timeout"), /*flush=*/false);
  }
  void OnBytes(std::span<const uint8_t> bytes) override {
    if (answered_ || server_ == nullptr) return;
    request_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    const size_t end = request_.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (request_.size() > kMaxRequestBytes) Answer({431, "text/plain; charset=utf-8", "request too large\n"}, false);
      return;
    }
    const size_t line_end = request_.find("\r\n");
    const std::string line = request_.substr(0, line_end);
    const size_t first = line.find(' ');
    const size_t second = line.find(' ', first + 1);
    if (first == std::string::npos || second == std::string::npos || line.compare(second + 1, 5, "HTTP/") != 0) {
      Answer({400, "text/plain; charset=utf-8", "malformed request line\n"}, false);
      return;
    }
    const std::string method = line.substr(0, first);
    std::string path = line.substr(first + 1, second - first - 1);
    path = path.substr(0, path.find('?'));
    if (method != "GET" && method != "HEAD") {
      Answer({405, "text/plain; charset=utf-8", "only GET and HEAD\n"}, false);
      return;
    }
    auto route = server_->routes_.find(path);
    if (route == server_->routes_.end()) {
      Answer({404, "text/plain; charset=utf-8", "not found\n"}, method == "HEAD");
      return;
    }
    Answer(route->second(), method == "HEAD");
  }
  void OnClosed(const Status&) override {
    if (server_ != nullptr) server_->Release(this);
    delete this;
  }
  // The server is going: close without answering, and never call it again.
  void Orphan() {
    server_ = nullptr;
    answered_ = true;
    stream->Close(UnavailableError("the server is closing"), /*flush=*/false);
  }
  const std::string& source() const { return source_; }

 private:
  void Answer(const PlainHttpResponse& response, bool head_only) {
    answered_ = true;
    std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " + Reason(response.status) +
                      "\r\nContent-Type: " + response.content_type +
                      "\r\nContent-Length: " + std::to_string(response.body.size()) + "\r\nConnection: close\r\n\r\n";
    if (!head_only) out += response.body;
    stream->Write({reinterpret_cast<const uint8_t*>(out.data()), out.size()});
    stream->Close(Status::Ok(), /*flush=*/true);
  }

  PlainHttpServer* server_;
  std::string source_;
  std::string request_;
  bool answered_ = false;
};

PlainHttpServer::~PlainHttpServer() {
  Close();
  for (Connection* connection : open_) connection->Orphan();
}

Status PlainHttpServer::Listen(const std::string& host, int port) {
  SIGIL_ASSIGN_OR_RETURN(listener_, TcpListener::Listen(loop_, {.host = host, .port = port},
                                                        [this](uv_stream_t* server) { Accept(server); }));
  return Status::Ok();
}

void PlainHttpServer::Accept(uv_stream_t* server) {
  auto stream = SocketStream::Accept(loop_, server, nullptr, nullptr);
  if (!stream.ok()) return;
  std::string source = ConnectionSource((*stream)->peer());
  size_t& from_source = by_source_[source];
  if (open_.size() >= options_.max_connections || from_source >= options_.max_connections_per_source) {
    // Accepted and closed at once: left in the backlog, it would hold the queue for everyone.
    if (from_source == 0) by_source_.erase(source);
    (*stream)->Abandon();
    return;
  }
  ++from_source;
  auto* connection = new Connection(this, std::move(source));
  open_.insert(connection);
  connection->stream = *stream;
  (*stream)->set_delegate(connection);
  (*stream)->Start();
  (*stream)->ArmTimer(options_.request_timeout);
}

void PlainHttpServer::Release(Connection* connection) {
  open_.erase(connection);
  auto it = by_source_.find(connection->source());
  if (it != by_source_.end() && --it->second == 0) by_source_.erase(it);
}

void PlainHttpServer::Close() {
  if (listener_) listener_->Close();
  listener_.reset();
}

}  // namespace sigil::transport
