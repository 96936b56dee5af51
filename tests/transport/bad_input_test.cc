// Hostile and broken peers: garbage bytes, a truncated HTTP/2 preface, a TLS client that never
// finishes its handshake, an idle connection. Each is closed with the reason recorded, and a
// well-behaved client is served while they are being dealt with.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
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
  static RawClient Tcp(int port) {
    RawClient c(::socket(AF_INET, SOCK_STREAM, 0));
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

}  // namespace
}  // namespace sigil::transport
