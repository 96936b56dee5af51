#include "transport/https_get.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

#include "core/ascii.h"
#include "transport/http_header_fields.h"

namespace sigil::transport {
namespace {

using Clock = std::chrono::steady_clock;

int MillisecondsLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 60'000));
}

bool ParsePort(std::string_view text, int& port) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), port);
  return error == std::errc() && end == text.data() + text.size() && port > 0 && port <= 65535;
}

class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Waits for `events` on `fd` until the deadline; false when it passed.
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  while (true) {
    pollfd p{.fd = fd, .events = events, .revents = 0};
    const int ready = ::poll(&p, 1, MillisecondsLeft(deadline));
    if (ready > 0) return true;
    if (ready == 0 || errno != EINTR) return false;
  }
}

// A connected non-blocking socket to one of the host's addresses.
Result<int> Connect(const HttpsUrl& url, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(url.port);
  if (const int rc = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return UnavailableError("resolving " + url.host + ": " + ::gai_strerror(rc));
  }
  std::string last = "no address";
  for (addrinfo* at = found; at != nullptr; at = at->ai_next) {
    const int fd = ::socket(at->ai_family, at->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, at->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, at->ai_addr, at->ai_addrlen) == 0 ||
        (errno == EINPROGRESS && WaitFor(fd, POLLOUT, deadline))) {
      int error = 0;
      socklen_t length = sizeof(error);
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0) {
        ::freeaddrinfo(found);
        return fd;
      }
      last = std::strerror(error);
    } else {
      last = Clock::now() >= deadline ? "timed out" : std::strerror(errno);
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return UnavailableError("connecting to " + url.host + ":" + port + ": " + last);
}

Status WriteAll(int fd, const std::vector<uint8_t>& bytes, Clock::time_point deadline) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!WaitFor(fd, POLLOUT, deadline)) return DeadlineExceededError("sending the request timed out");
    } else {
      return UnavailableError(std::string("sending the request: ") + std::strerror(errno));
    }
  }
  return Status::Ok();
}


}  // namespace

Result<HttpsUrl> HttpsUrl::Parse(std::string_view url) {
  const auto bad = [&](const std::string& why) {
    return InvalidArgumentError("'" + std::string(url) + "' is not an https URL: " + why);
  };
  constexpr std::string_view kScheme = "https://";
  if (url.size() < kScheme.size() || AsciiLower(url.substr(0, kScheme.size())) != kScheme) return bad("it must start with https://");
  std::string_view rest = url.substr(kScheme.size());
  const size_t path_at = std::min(rest.find_first_of("/?#"), rest.size());
  std::string_view authority = rest.substr(0, path_at);
  HttpsUrl parsed;
  std::string_view path = rest.substr(path_at);
  path = path.substr(0, path.find('#'));
  parsed.path = path.empty() ? "/" : path.starts_with('?') ? "/" + std::string(path) : std::string(path);
  if (authority.find('@') != std::string_view::npos) return bad("user information is not allowed");
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("an unclosed [");
    parsed.host = authority.substr(1, close - 1);
    authority.remove_prefix(close + 1);
    if (!authority.empty() && (!authority.starts_with(':') || !ParsePort(authority.substr(1), parsed.port))) return bad("a bad port");
  } else {
    const size_t colon = authority.find(':');
    parsed.host = authority.substr(0, colon);
    if (colon != std::string_view::npos && !ParsePort(authority.substr(colon + 1), parsed.port)) return bad("a bad port");
  }
  if (parsed.host.empty()) return bad("no host");
  for (char c : parsed.host) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != ':') return bad("a bad host");
  }
  for (char c : parsed.path) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return bad("a space or control character in its path");
  }
  return parsed;
}

Result<HttpResponse> ParseHttpResponse(std::string_view bytes) {
  const size_t head_end = bytes.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return InvalidArgumentError("the answer ended before its header did");
  std::string_view head = bytes.substr(0, head_end);
  const size_t line_end = std::min(head.find("\r\n"), head.size());
  const std::string_view line = head.substr(0, line_end);
  HttpResponse response;
  if (!line.starts_with("HTTP/1.") || line.size() < 12 || line[8] != ' ' ||
      !ParsePort(line.substr(9, 3), response.status) || (line.size() > 12 && line[12] != ' ')) {
    return InvalidArgumentError("the answer has no HTTP/1.x status line");
  }
  if (response.status < 100 || response.status > 599) return InvalidArgumentError("the answer's status is out of range");
  if (!ReadHttpHeaderFields(head.substr(line_end), response.headers)) {
    return InvalidArgumentError("the answer has a malformed header field, or more than " +
                                std::to_string(kMaxHttpHeaderFields));
  }
  std::optional<size_t> content_length;
  for (const auto& [name, value] : response.headers) {
    if (name == "content-length") {
      size_t length = 0;
      const auto [at, error] = std::from_chars(value.data(), value.data() + value.size(), length);
      if (error != std::errc() || at != value.data() + value.size() || (content_length && *content_length != length)) {
        return InvalidArgumentError("the answer has a bad Content-Length");
      }
      content_length = length;
    }
    if (name == "transfer-encoding" && AsciiLower(value) != "identity") {
      return InvalidArgumentError("the answer is in a transfer encoding (" + value + ") to an HTTP/1.0 request");
    }
  }
  std::string_view body = bytes.substr(head_end + 4);
  if (content_length) {
    if (body.size() < *content_length) return InvalidArgumentError("the answer ended before its Content-Length");
    body = body.substr(0, *content_length);
  }
  response.body = std::string(body);
  return response;
}

Result<HttpResponse> HttpsGet(const HttpsUrl& url, std::shared_ptr<const TlsContext> tls, const HttpsGetOptions& options) {
  const Clock::time_point deadline = Clock::now() + options.timeout;
  SIGIL_ASSIGN_OR_RETURN(int fd, Connect(url, deadline));
  Socket socket(fd);
  SIGIL_ASSIGN_OR_RETURN(auto session, TlsSession::Create(std::move(tls), url.host));
  SIGIL_RETURN_IF_ERROR(session->Start());
  const std::string host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  const std::string request = "GET " + url.path + " HTTP/1.0\r\nHost: " + host + ":" + std::to_string(url.port) +
                              "\r\nAccept: application/json\r\nUser-Agent: sigil\r\n\r\n";
  SIGIL_RETURN_IF_ERROR(session->Send({reinterpret_cast<const uint8_t*>(request.data()), request.size()}));
  std::vector<uint8_t> out;
  std::vector<uint8_t> answer;
  uint8_t buffer[16384];
  while (true) {
    out.clear();
    session->TakeOutput(&out);
    SIGIL_RETURN_IF_ERROR(WriteAll(fd, out, deadline));
    if (!WaitFor(fd, POLLIN, deadline)) return DeadlineExceededError("the answer from " + url.host + " timed out");
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return UnavailableError(std::string("reading the answer: ") + std::strerror(errno));
    }
    if (n == 0) {
      if (!session->handshake_complete()) return UnavailableError(url.host + " closed the connection during the TLS handshake");
      break;
    }
    Status received = session->Receive({buffer, static_cast<size_t>(n)}, &answer);
    if (answer.size() > options.max_response_bytes) {
      return ResourceExhaustedError("the answer from " + url.host + " is larger than " +
                                    std::to_string(options.max_response_bytes) + " bytes");
    }
    // The server's close_notify ends the answer as its closing the socket does.
    if (!received.ok() && received.code() == Code::kUnavailable && session->handshake_complete()) break;
    SIGIL_RETURN_IF_ERROR(received);
  }
  return ParseHttpResponse({reinterpret_cast<const char*>(answer.data()), answer.size()});
}

}  // namespace sigil::transport
