#include "tests/support/raw_http2.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <utility>

namespace sigil::testing {

std::string Http2Frame(uint8_t type, uint8_t flags, uint32_t stream_id, std::string_view payload) {
  std::string frame;
  frame.push_back(static_cast<char>((payload.size() >> 16) & 0xff));
  frame.push_back(static_cast<char>((payload.size() >> 8) & 0xff));
  frame.push_back(static_cast<char>(payload.size() & 0xff));
  frame.push_back(static_cast<char>(type));
  frame.push_back(static_cast<char>(flags));
  for (int shift : {24, 16, 8, 0}) frame.push_back(static_cast<char>((stream_id >> shift) & 0xff));
  frame.append(payload);
  return frame;
}

std::string Http2ClientPreface() { return std::string(kHttp2Preface) + Http2Frame(kFrameSettings, 0, 0, ""); }

std::string Http2OpenRequest(uint32_t stream_id) {
  return Http2Frame(kFrameHeaders, kFlagEndHeaders, stream_id, kHpackPostRoot);
}

std::string Http2Headers(std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  std::string block;
  for (const auto& [name, value] : fields) {
    EXPECT_LT(name.size(), 127u);
    EXPECT_LT(value.size(), 127u);
    block.push_back('\0');  // literal without indexing, new name
    block.push_back(static_cast<char>(name.size()));
    block.append(name);
    block.push_back(static_cast<char>(value.size()));
    block.append(value);
  }
  return block;
}

std::string Http2Setting(uint16_t id, uint32_t value) {
  std::string entry;
  for (int shift : {8, 0}) entry.push_back(static_cast<char>((id >> shift) & 0xff));
  for (int shift : {24, 16, 8, 0}) entry.push_back(static_cast<char>((value >> shift) & 0xff));
  return entry;
}

std::string Http2RstStream(uint32_t stream_id, uint32_t error_code) {
  std::string code;
  for (int shift : {24, 16, 8, 0}) code.push_back(static_cast<char>((error_code >> shift) & 0xff));
  return Http2Frame(kFrameRstStream, 0, stream_id, code);
}

namespace {
uint32_t Be32At(std::string_view payload, size_t at) {
  if (payload.size() < at + 4) return 0;
  const auto* p = reinterpret_cast<const uint8_t*>(payload.data() + at);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
}  // namespace

uint32_t Http2ErrorCode(const Http2ReceivedFrame& frame) {
  return Be32At(frame.payload, frame.type == kFrameGoaway ? 4 : 0);
}

uint32_t Http2GoawayLastStream(const Http2ReceivedFrame& frame) { return Be32At(frame.payload, 0) & 0x7fffffff; }

std::vector<Http2ReceivedFrame> Http2Frames(std::string_view bytes) {
  std::vector<Http2ReceivedFrame> frames;
  for (size_t at = 0; at + 9 <= bytes.size();) {
    const auto* h = reinterpret_cast<const uint8_t*>(bytes.data() + at);
    const size_t length = (size_t{h[0]} << 16) | (size_t{h[1]} << 8) | h[2];
    if (at + 9 + length > bytes.size()) break;
    const uint32_t id = ((uint32_t{h[5]} & 0x7f) << 24) | (uint32_t{h[6]} << 16) | (uint32_t{h[7]} << 8) | h[8];
    frames.push_back({h[3], h[4], id, bytes.substr(at + 9, length)});
    at += 9 + length;
  }
  return frames;
}

RawClient RawClient::Unix(const std::string& path) {
  RawClient client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(::connect(client.fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << std::strerror(errno);
  return client;
}

RawClient RawClient::Tcp(int port, const char* from) {
  RawClient client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (from != nullptr) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    EXPECT_EQ(::inet_pton(AF_INET, from, &local.sin_addr), 1);
    EXPECT_EQ(::bind(client.fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)), 0) << std::strerror(errno);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(client.fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << std::strerror(errno);
  return client;
}

RawClient RawClient::Tls(int port, const char* from) {
  RawClient client = Tcp(port, from);
  client.ssl_context_ = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(client.ssl_context_, SSL_VERIFY_NONE, nullptr);
  static constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(client.ssl_context_, kAlpnH2, sizeof(kAlpnH2));
  client.ssl_ = SSL_new(client.ssl_context_);
  SSL_set_fd(client.ssl_, client.fd_);
  timeval timeout{5, 0};
  ::setsockopt(client.fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (SSL_connect(client.ssl_) != 1) {
    SSL_free(std::exchange(client.ssl_, nullptr));
    ::close(std::exchange(client.fd_, -1));
  }
  return client;
}

RawClient::RawClient(RawClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), ssl_context_(std::exchange(other.ssl_context_, nullptr)),
      ssl_(std::exchange(other.ssl_, nullptr)), received_(std::move(other.received_)) {}

RawClient::~RawClient() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (ssl_context_ != nullptr) SSL_CTX_free(ssl_context_);
  if (fd_ >= 0) ::close(fd_);
}

void RawClient::Send(std::string_view bytes) {
  EXPECT_TRUE(TrySend(bytes)) << "the server closed the connection or stopped reading";
}

bool RawClient::TrySend(std::string_view bytes, std::chrono::milliseconds timeout) {
  if (fd_ < 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!bytes.empty()) {
    pollfd ready{fd_, POLLOUT, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || ::poll(&ready, 1, static_cast<int>(left.count())) <= 0) return false;
    ssize_t sent;
    if (ssl_ != nullptr) {
      sent = SSL_write(ssl_, bytes.data(), static_cast<int>(std::min<size_t>(bytes.size(), 1 << 20)));
    } else {
      sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    }
    if (sent <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(sent));
  }
  return true;
}

bool RawClient::ReadSome(std::chrono::milliseconds wait) {
  if (fd_ < 0) return false;
  if (ssl_ == nullptr || SSL_pending(ssl_) == 0) {
    pollfd ready{fd_, POLLIN, 0};
    if (::poll(&ready, 1, static_cast<int>(wait.count())) <= 0) return true;
  }
  char buffer[16384];
  const ssize_t n = ssl_ != nullptr ? SSL_read(ssl_, buffer, sizeof(buffer)) : ::recv(fd_, buffer, sizeof(buffer), 0);
  if (n <= 0) return false;
  received_.append(buffer, static_cast<size_t>(n));
  return true;
}

bool RawClient::WaitForClose(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!ReadSome(std::chrono::milliseconds(20))) return true;
  }
  return false;
}

bool RawClient::WaitForFrame(uint8_t type, uint32_t stream_id, std::chrono::milliseconds timeout, uint32_t* error_code) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    for (const Http2ReceivedFrame& frame : Http2Frames(received_)) {
      if (frame.type != type || frame.stream_id != stream_id) continue;
      if (error_code != nullptr && frame.payload.size() >= 4) {
        const auto* p = reinterpret_cast<const uint8_t*>(frame.payload.data());
        *error_code = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
      }
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (!ReadSome(std::chrono::milliseconds(20))) return false;
  }
}

bool RawClient::ReadFor(std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  do {
    if (!ReadSome(std::chrono::milliseconds(10))) return false;
  } while (std::chrono::steady_clock::now() < deadline);
  return true;
}

}  // namespace sigil::testing
