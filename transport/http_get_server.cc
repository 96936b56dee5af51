#include "transport/http_get_server.h"

#include <algorithm>
#include <cctype>

#include "core/ascii.h"
#include "transport/http2_server.h"
#include "transport/http_header_fields.h"
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

// The header fields after the request line (`fields` starts at its CRLF), names lower-cased and
// values trimmed. False on a line that is not "name: value" (obsolete line folding included).

}  // namespace

bool ReadHttpHeaderFields(std::string_view fields, HttpHeaderFields& out) {
  while (fields.starts_with("\r\n")) {
    fields.remove_prefix(2);
    const size_t end = std::min(fields.find("\r\n"), fields.size());
    const std::string_view line = fields.substr(0, end);
    fields.remove_prefix(end);
    const size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos || out.size() == kMaxHttpHeaderFields) return false;
    const std::string_view name = line.substr(0, colon);
    if (name.find_first_of(" \t") != std::string_view::npos) return false;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    out.emplace_back(AsciiLower(name), std::string(value));
  }
  return fields.empty();
}

std::variant<HttpGetRequest, HttpGetResponse> ParseHttpGetRequest(std::string_view head) {
  const auto refuse = [](int status, const char* why) {
    return HttpGetResponse{status, "text/plain; charset=utf-8", std::string(why) + "\n"};
  };
  HttpGetRequest request;
  const size_t line_end = std::min(head.find("\r\n"), head.size());
  const std::string_view line = head.substr(0, line_end);
  const size_t first = line.find(' ');
  const size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
  if (first == std::string_view::npos || second == std::string_view::npos || line.compare(second + 1, 5, "HTTP/") != 0) {
    return refuse(400, "malformed request line");
  }
  request.method = line.substr(0, first);
  const std::string_view target = line.substr(first + 1, second - first - 1);
  request.path = target.substr(0, target.find('?'));
  if (request.method != "GET" && request.method != "HEAD") return refuse(405, "only GET and HEAD");
  if (!ReadHttpHeaderFields(head.substr(line_end), request.headers)) return refuse(400, "malformed header field");
  return request;
}

std::string_view HttpGetRequest::Header(std::string_view name) const {
  for (const auto& [field, value] : headers) {
    if (field == name) return value;
  }
  return {};
}

class HttpGetServer::Connection final : public SocketStream::Delegate {
 public:
  Connection(HttpGetServer* server, std::string source) : server_(server), source_(std::move(source)) {}
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
    if (end > kMaxRequestBytes) {
      Answer({431, "text/plain; charset=utf-8", "request too large\n"}, false);
      return;
    }
    auto parsed = ParseHttpGetRequest(std::string_view(request_).substr(0, end));
    if (auto* refusal = std::get_if<HttpGetResponse>(&parsed)) {
      Answer(*refusal, false);
      return;
    }
    HttpGetRequest& request = std::get<HttpGetRequest>(parsed);
    request.over_tls = !stream->peer().tls_version.empty();
    const bool head_only = request.method == "HEAD";
    auto route = server_->routes_.find(request.path);
    if (route == server_->routes_.end()) {
      Answer({404, "text/plain; charset=utf-8", "not found\n"}, head_only);
      return;
    }
    Answer(route->second(request), head_only);
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
  void Answer(const HttpGetResponse& response, bool head_only) {
    answered_ = true;
    std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " + Reason(response.status) +
                      "\r\nContent-Type: " + response.content_type +
                      "\r\nContent-Length: " + std::to_string(response.body.size()) + "\r\nConnection: close\r\n";
    for (const auto& [name, value] : response.headers) out += name + ": " + value + "\r\n";
    out += "\r\n";
    if (!head_only) out += response.body;
    stream->Write({reinterpret_cast<const uint8_t*>(out.data()), out.size()});
    stream->Close(Status::Ok(), /*flush=*/true);
  }

  HttpGetServer* server_;
  std::string source_;
  std::string request_;
  bool answered_ = false;
};

HttpGetServer::~HttpGetServer() {
  Close();
  for (Connection* connection : open_) connection->Orphan();
}

Status HttpGetServer::Listen(const std::string& host, int port) {
  SIGIL_ASSIGN_OR_RETURN(listener_, TcpListener::Listen(loop_, {.host = host, .port = port},
                                                        [this](uv_stream_t* server) { Accept(server); }));
  return Status::Ok();
}

void HttpGetServer::Accept(uv_stream_t* server) {
  std::shared_ptr<const TlsContext> tls = options_.tls ? options_.tls->Current() : nullptr;
  auto stream = SocketStream::Accept(loop_, server, tls, nullptr);
  if (!stream.ok()) return;
  if (options_.tls && !tls) {
    (*stream)->Abandon();  // a TLS listener without credentials never answers in the clear
    return;
  }
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

void HttpGetServer::Release(Connection* connection) {
  open_.erase(connection);
  auto it = by_source_.find(connection->source());
  if (it != by_source_.end() && --it->second == 0) by_source_.erase(it);
}

void HttpGetServer::Close() {
  if (listener_) listener_->Close();
  listener_.reset();
}

}  // namespace sigil::transport
