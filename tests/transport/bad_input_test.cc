// Hostile and broken peers: garbage bytes, a truncated HTTP/2 preface, a TLS client that never
// finishes its handshake, an idle connection; and peers that hold what the listener's limits
// bound (connections per source and in total, a request that never finishes arriving, request
// bodies half-sent on many streams, a reader that never reads). Each is closed or reset with
// the reason counted, and a well-behaved client is served while they are being dealt with.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "tests/support/process.h"
#include "tests/support/test_pki.h"
#include "transport/event_loop.h"
#include "transport/http2_server.h"
#include "transport/tls.h"

namespace sigil::transport {
namespace {

using namespace std::chrono_literals;
using sigil::testing::RunProcess;
using sigil::testing::TempDir;
using sigil::testing::TestCa;
using sigil::testing::WaitUntil;

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// A raw socket, closed on destruction.
class RawClient {
 public:
  static RawClient Unix(const std::string& path) {
    RawClient c(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(::connect(c.fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    return c;
  }
  // `from` another loopback address (127.0.0.2) makes the connection come from another source.
  static RawClient Tcp(int port, const char* from = nullptr) {
    RawClient c(::socket(AF_INET, SOCK_STREAM, 0));
    if (from != nullptr) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      EXPECT_EQ(::inet_pton(AF_INET, from, &local.sin_addr), 1);
      EXPECT_EQ(::bind(c.fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)), 0);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(c.fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    return c;
  }
  RawClient(RawClient&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }

  void Send(std::string_view bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }

  // Reads until the server closes; false if it is still open after `timeout`.
  bool WaitForClose(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return true;
      received_.append(buf, static_cast<size_t>(n));
    }
    return false;
  }
  const std::string& received() const { return received_; }

  // Reads for `timeout` (or until the server closes) and says whether a frame of `type` for
  // `stream_id` arrived; `error_code`, when given, receives a RST_STREAM's code.
  bool WaitForFrame(uint8_t type, uint32_t stream_id, std::chrono::milliseconds timeout,
                    uint32_t* error_code = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      // The server preface and frames, skipping nothing but whole frames.
      for (size_t at = 0; at + 9 <= received_.size();) {
        const auto* h = reinterpret_cast<const uint8_t*>(received_.data() + at);
        const size_t length = (size_t{h[0]} << 16) | (size_t{h[1]} << 8) | h[2];
        const uint32_t id = ((uint32_t{h[5]} & 0x7f) << 24) | (uint32_t{h[6]} << 16) | (uint32_t{h[7]} << 8) | h[8];
        if (at + 9 + length > received_.size()) break;
        if (h[3] == type && id == stream_id) {
          if (error_code != nullptr && length >= 4) {
            error_code[0] = (uint32_t{h[9]} << 24) | (uint32_t{h[10]} << 16) | (uint32_t{h[11]} << 8) | h[12];
          }
          return true;
        }
        at += 9 + length;
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char buf[16384];
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return false;
      received_.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  explicit RawClient(int fd) : fd_(fd) {}
  int fd_;
  std::string received_;
};

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_.Start();
    auto creds = TlsCredentials::FromPem(svid_.CertPem(), svid_.KeyPem());
    ASSERT_TRUE(creds.ok());
    auto tls = TlsContext::CreateServer(TlsOptions{.credentials = *creds});
    ASSERT_TRUE(tls.ok());
    loop_.loop().Invoke([&] {
      server_ = std::make_unique<Http2Server>(
          &loop_.loop(),
          Http2ServerOptions{.handshake_timeout = 400ms, .idle_timeout = 400ms},
          [](std::shared_ptr<Http2ServerStream> s) {
            s->Respond(200, {});
            s->Write("fine");
            s->End();
          });
      ASSERT_TRUE(server_->ListenUnix(UnixListenerOptions{.path = path_}).ok());
      ASSERT_TRUE(server_->ListenTcp(TcpListenerOptions{}, *tls).ok());
      port_ = server_->tcp_port();
    });
  }
  void TearDown() override {
    loop_.loop().Invoke([&] { server_.reset(); });
    loop_.Stop();
  }

  // A well-behaved request over the Unix socket.
  std::string GoodRequest() {
    auto out = RunProcess({"curl", "-sS", "--http2-prior-knowledge", "--unix-socket", path_,
                           "http://localhost/"});
    return out.ok() ? out->out + out->err : out.status().ToString();
  }

  Http2Server::Stats Stats() {
    return loop_.loop().Invoke([&] { return server_->stats(); });
  }
  bool ErrorMentions(std::string_view what) {
    for (const auto& e : Stats().recent_errors) {
      if (e.find(what) != std::string::npos) return true;
    }
    return false;
  }

  TempDir dir_;
  std::string path_ = (dir_ / "h2.sock").string();
  TestCa ca_{"example.org"};
  sigil::testing::TestCert svid_ = ca_.IssueSvid("spiffe://example.org/server");
  LoopThread loop_;
  std::unique_ptr<Http2Server> server_;
  int port_ = 0;
};

TEST_F(BadInputTest, GarbageInsteadOfThePrefaceIsAProtocolError) {
  RawClient bad = RawClient::Unix(path_);
  bad.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(bad.WaitForClose(5s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 300ms);  // not the handshake timeout
  EXPECT_EQ(GoodRequest(), "fine");
  EXPECT_EQ(Stats().protocol_errors, 1u);
  EXPECT_TRUE(ErrorMentions("protocol error"));
}

TEST_F(BadInputTest, GarbageAfterThePrefaceIsAProtocolError) {
  RawClient bad = RawClient::Unix(path_);
  bad.Send(std::string(kPreface) + std::string(64, '\xff'));
  ASSERT_TRUE(bad.WaitForClose(5s));
  EXPECT_EQ(GoodRequest(), "fine");
  EXPECT_EQ(Stats().protocol_errors, 1u);
  EXPECT_TRUE(ErrorMentions("protocol error"));
}

TEST_F(BadInputTest, ATruncatedPrefaceTimesOutWhileOthersAreServed) {
  RawClient bad = RawClient::Unix(path_);
  bad.Send(kPreface.substr(0, 10));
  EXPECT_EQ(GoodRequest(), "fine");  // served while the truncated one waits
  ASSERT_TRUE(bad.WaitForClose(5s));
  EXPECT_EQ(Stats().handshake_timeouts, 1u);
  EXPECT_TRUE(ErrorMentions("preface not received"));
}

TEST_F(BadInputTest, ATlsClientThatNeverFinishesItsHandshakeIsClosed) {
  RawClient silent = RawClient::Tcp(port_);
  RawClient partial = RawClient::Tcp(port_);
  partial.Send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11));  // a ClientHello's start
  EXPECT_EQ(GoodRequest(), "fine");
  ASSERT_TRUE(silent.WaitForClose(5s));
  ASSERT_TRUE(partial.WaitForClose(5s));
  EXPECT_EQ(Stats().handshake_timeouts, 2u);
  EXPECT_TRUE(ErrorMentions("TLS handshake not finished"));
}

TEST_F(BadInputTest, PlaintextOnTheTlsPortFailsTheHandshake) {
  RawClient bad = RawClient::Tcp(port_);
  bad.Send(std::string(kPreface));
  ASSERT_TRUE(bad.WaitForClose(5s));
  EXPECT_EQ(GoodRequest(), "fine");
  EXPECT_EQ(Stats().tls_failures, 1u);
  EXPECT_TRUE(ErrorMentions("TLS handshake failed"));
}

TEST_F(BadInputTest, AnIdleConnectionGetsGoawayAndIsClosed) {
  RawClient idle = RawClient::Unix(path_);
  idle.Send(std::string(kPreface) + std::string("\0\0\0\x04\0\0\0\0\0", 9));  // empty SETTINGS
  ASSERT_TRUE(idle.WaitForClose(5s));
  EXPECT_EQ(Stats().idle_timeouts, 1u);
  // The last frame the server sent is GOAWAY (type 7) with NO_ERROR.
  const std::string& r = idle.received();
  ASSERT_GE(r.size(), 17u);
  std::string_view last(r.data() + r.size() - 17, 17);
  EXPECT_EQ(static_cast<uint8_t>(last[3]), 7);
  EXPECT_EQ(last.substr(13, 4), std::string_view("\0\0\0\0", 4));
}


// ---- Limits ----

// One HTTP/2 frame: 9-byte header, then the payload.
std::string Frame(uint8_t type, uint8_t flags, uint32_t stream_id, std::string_view payload) {
  std::string f;
  f.push_back(static_cast<char>((payload.size() >> 16) & 0xff));
  f.push_back(static_cast<char>((payload.size() >> 8) & 0xff));
  f.push_back(static_cast<char>(payload.size() & 0xff));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  for (int shift : {24, 16, 8, 0}) f.push_back(static_cast<char>((stream_id >> shift) & 0xff));
  f.append(payload);
  return f;
}

constexpr uint8_t kData = 0, kHeaders = 1, kRstStream = 3, kSettings = 4;
constexpr uint8_t kEndStream = 0x1, kEndHeaders = 0x4;
// POST, http, / from HPACK's static table, and :authority localhost as a literal.
constexpr std::string_view kPostRoot = "\x83\x86\x84\x01\x09localhost";

std::string ClientPreface() { return std::string(kPreface) + Frame(kSettings, 0, 0, ""); }
// A request whose body is still to come (no END_STREAM).
std::string OpenRequest(uint32_t stream_id) { return Frame(kHeaders, kEndHeaders, stream_id, kPostRoot); }

class ListenerLimitsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_) loop_.loop().Invoke([&] { server_.reset(); });
    loop_.Stop();
  }

  // Plaintext HTTP/2 on a Unix socket and on loopback TCP, answering "xxxx", or /big with
  // four writes of 512 KiB.
  void Start(Http2ServerOptions options) {
    loop_.Start();
    loop_.loop().Invoke([&] {
      server_ = std::make_unique<Http2Server>(&loop_.loop(), options, [](std::shared_ptr<Http2ServerStream> s) {
        s->Respond(200, {});
        if (s->request().path == "/big") {
          for (int i = 0; i < 4; ++i) s->Write(std::string(512 * 1024, 'x'));
        } else {
          s->Write("xxxx");
        }
        s->End();
      });
      ASSERT_TRUE(server_->ListenUnix(UnixListenerOptions{.path = path_}).ok());
      ASSERT_TRUE(server_->ListenTcp(TcpListenerOptions{.host = "0.0.0.0"}, std::shared_ptr<const TlsContext>()).ok());
      port_ = server_->tcp_port();
    });
  }

  bool GoodRequest() {
    auto out = RunProcess({"curl", "-sS", "--http2-prior-knowledge", "--unix-socket", path_, "http://localhost/"});
    return out.ok() && out->exit_code == 0 && out->out == "xxxx";
  }

  Http2Server::Stats Stats() {
    return loop_.loop().Invoke([&] { return server_->stats(); });
  }
  size_t From(const std::string& source) {
    return loop_.loop().Invoke([&] { return server_->connections_from(source); });
  }
  size_t Connections() {
    return loop_.loop().Invoke([&] { return server_->connection_count(); });
  }

  TempDir dir_;
  std::string path_ = (dir_ / "h2.sock").string();
  LoopThread loop_;
  std::unique_ptr<Http2Server> server_;
  int port_ = 0;
};

TEST_F(ListenerLimitsTest, OneUidCannotTakeEveryConnection) {
  Start(Http2ServerOptions{.max_connections_per_source = 4});
  const std::string me = "uid:" + std::to_string(::getuid());
  std::vector<RawClient> held;
  for (int i = 0; i < 4; ++i) held.push_back(RawClient::Unix(path_));
  ASSERT_TRUE(WaitUntil([&] { return From(me) == 4; }, 5s));
  // The fifth connection of this uid is accepted and closed at once: curl, run as the same
  // uid, is refused.
  RawClient fifth = RawClient::Unix(path_);
  EXPECT_TRUE(fifth.WaitForClose(5s));
  EXPECT_FALSE(GoodRequest());
  EXPECT_EQ(Stats().refused_connections, 2u);
  EXPECT_EQ(From(me), 4u);
  held.pop_back();
  ASSERT_TRUE(WaitUntil([&] { return From(me) == 3; }, 5s));
  EXPECT_TRUE(GoodRequest());
}

TEST_F(ListenerLimitsTest, OneAddressCannotTakeEveryConnectionNorDoAllTogether) {
  Start(Http2ServerOptions{.max_connections = 5, .max_connections_per_source = 3});
  std::vector<RawClient> held;
  for (int i = 0; i < 4; ++i) held.push_back(RawClient::Tcp(port_));
  ASSERT_TRUE(WaitUntil([&] { return Stats().refused_connections == 1; }, 5s));
  EXPECT_EQ(From("127.0.0.1"), 3u);
  // Another source still gets in, up to the total.
  held.push_back(RawClient::Tcp(port_, "127.0.0.2"));
  held.push_back(RawClient::Tcp(port_, "127.0.0.2"));
  ASSERT_TRUE(WaitUntil([&] { return From("127.0.0.2") == 2; }, 5s));
  RawClient over_total = RawClient::Tcp(port_, "127.0.0.3");
  EXPECT_TRUE(over_total.WaitForClose(5s));
  EXPECT_EQ(Stats().refused_connections, 2u);
  EXPECT_EQ(Connections(), 5u);
}

TEST_F(ListenerLimitsTest, TheOpenFileLimitCapsConnectionsLeavingAReserve) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 256;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  Start(Http2ServerOptions{.max_connections = 4096});
  const size_t allowed = loop_.loop().Invoke([&] { return server_->options().max_connections; });
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_EQ(allowed, 256u - 64u - 32u);
}

TEST_F(ListenerLimitsTest, ARequestThatNeverFinishesArrivingIsReset) {
  Start(Http2ServerOptions{.idle_timeout = 60s, .request_timeout = 300ms});
  RawClient silent = RawClient::Unix(path_);
  silent.Send(ClientPreface() + OpenRequest(1));
  uint32_t code = 0;
  ASSERT_TRUE(silent.WaitForFrame(kRstStream, 1, 5s, &code));
  EXPECT_EQ(code, 0x8u);  // CANCEL
  EXPECT_EQ(Stats().request_timeouts, 1u);
  EXPECT_TRUE(GoodRequest());
}

TEST_F(ListenerLimitsTest, HalfSentBodiesOnManyStreamsAreBoundedPerConnection) {
  Start(Http2ServerOptions{.max_connection_request_bytes = 64 * 1024});
  RawClient client = RawClient::Unix(path_);
  std::string bytes = ClientPreface();
  const std::string fifteen_k(15 * 1024, 'b');
  for (uint32_t stream : {1u, 3u, 5u}) {
    bytes += OpenRequest(stream) + Frame(kData, 0, stream, fifteen_k) + Frame(kData, 0, stream, fifteen_k);
  }
  client.Send(bytes);
  // 60 KiB fit; the stream that takes the connection past 64 KiB is refused.
  uint32_t code = 0;
  ASSERT_TRUE(client.WaitForFrame(kRstStream, 5, 5s, &code));
  EXPECT_EQ(code, 0x7u);  // REFUSED_STREAM
  EXPECT_EQ(Stats().refused_request_bytes, 1u);
  // The streams within the bound are still served.
  client.Send(Frame(kData, kEndStream, 1, "end"));
  EXPECT_TRUE(client.WaitForFrame(kHeaders, 1, 5s));
}

TEST_F(ListenerLimitsTest, AReaderThatNeverReadsLosesItsStreamNotTheServersMemory) {
  // Four 512 KiB writes against a 1 MiB bound per stream; the peer's 64 KiB window lets
  // almost nothing leave, so the third write finds the stream over its bound.
  Start(Http2ServerOptions{.max_stream_unsent_bytes = 1 << 20});
  RawClient reader = RawClient::Unix(path_);
  // GET (2), http, :path /big as a literal, :authority localhost.
  reader.Send(ClientPreface() +
              Frame(kHeaders, kEndHeaders | kEndStream, 1, std::string_view("\x82\x86\x04\x04/big\x01\x09localhost")));
  uint32_t code = 0;
  ASSERT_TRUE(reader.WaitForFrame(kRstStream, 1, 5s, &code));
  EXPECT_EQ(code, 0xbu);  // ENHANCE_YOUR_CALM
  EXPECT_EQ(Stats().slow_reader_resets, 1u);
  EXPECT_TRUE(GoodRequest());
}

}  // namespace
}  // namespace sigil::transport
