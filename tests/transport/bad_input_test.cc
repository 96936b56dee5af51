// Hostile and broken peers: garbage bytes, a truncated HTTP/2 preface, a TLS client that never
// finishes its handshake, an idle connection; and peers that hold what the listener's limits
// bound (connections per source and in total, a request that never finishes arriving, request
// bodies half-sent on many streams, a reader that never reads). Each is closed or reset with
// the reason counted, and a well-behaved client is served while they are being dealt with.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>


#include "tests/support/process.h"
#include "tests/support/raw_http2.h"
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
using sigil::testing::Http2ClientPreface;
using sigil::testing::Http2Frame;
using sigil::testing::Http2OpenRequest;
using sigil::testing::kFlagEndHeaders;
using sigil::testing::kFlagEndStream;
using sigil::testing::kFrameData;
using sigil::testing::kFrameHeaders;
using sigil::testing::kFrameRstStream;
using sigil::testing::kHttp2Preface;
using sigil::testing::RawClient;

// Whether a connection failure the server remembers names `what`.
bool RecentErrorsMention(const Http2Server::Stats& stats, std::string_view what) {
  for (const auto& e : stats.recent_errors) {
    if (e.find(what) != std::string::npos) return true;
  }
  return false;
}

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
  bool ErrorMentions(std::string_view what) { return RecentErrorsMention(Stats(), what); }

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
  bad.Send(std::string(kHttp2Preface) + std::string(64, '\xff'));
  ASSERT_TRUE(bad.WaitForClose(5s));
  EXPECT_EQ(GoodRequest(), "fine");
  EXPECT_EQ(Stats().protocol_errors, 1u);
  EXPECT_TRUE(ErrorMentions("protocol error"));
}

TEST_F(BadInputTest, ATruncatedPrefaceTimesOutWhileOthersAreServed) {
  RawClient bad = RawClient::Unix(path_);
  bad.Send(kHttp2Preface.substr(0, 10));
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
  bad.Send(std::string(kHttp2Preface));
  ASSERT_TRUE(bad.WaitForClose(5s));
  EXPECT_EQ(GoodRequest(), "fine");
  EXPECT_EQ(Stats().tls_failures, 1u);
  EXPECT_TRUE(ErrorMentions("TLS handshake failed"));
}

TEST_F(BadInputTest, AnIdleConnectionGetsGoawayAndIsClosed) {
  RawClient idle = RawClient::Unix(path_);
  idle.Send(std::string(kHttp2Preface) + std::string("\0\0\0\x04\0\0\0\0\0", 9));  // empty SETTINGS
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

class ListenerLimitsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_) loop_.loop().Invoke([&] { server_.reset(); });
    loop_.Stop();
  }

  // Plaintext HTTP/2 on a Unix socket and on loopback TCP, answering "xxxx", /big with four
  // writes of 512 KiB, or /watch with one write and no end.
  void Start(Http2ServerOptions options) {
    loop_.Start();
    loop_.loop().Invoke([&] {
      server_ = std::make_unique<Http2Server>(&loop_.loop(), options, [](std::shared_ptr<Http2ServerStream> s) {
        s->Respond(200, {});
        if (s->request().path == "/big") {
          for (int i = 0; i < 4; ++i) s->Write(std::string(512 * 1024, 'x'));
        } else if (s->request().path == "/watch") {
          s->Write("first");  // and the stream stays open, as a watch does
          return;
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
  bool ErrorMentions(std::string_view what) { return RecentErrorsMention(Stats(), what); }
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
  silent.Send(Http2ClientPreface() + Http2OpenRequest(1));
  uint32_t code = 0;
  ASSERT_TRUE(silent.WaitForFrame(kFrameRstStream, 1, 5s, &code));
  EXPECT_EQ(code, 0x8u);  // CANCEL
  EXPECT_EQ(Stats().request_timeouts, 1u);
  EXPECT_TRUE(GoodRequest());
}

TEST_F(ListenerLimitsTest, HalfSentBodiesOnManyStreamsAreBoundedPerConnection) {
  Start(Http2ServerOptions{.max_connection_request_bytes = 64 * 1024});
  RawClient client = RawClient::Unix(path_);
  std::string bytes = Http2ClientPreface();
  const std::string fifteen_k(15 * 1024, 'b');
  for (uint32_t stream : {1u, 3u, 5u}) {
    bytes += Http2OpenRequest(stream) + Http2Frame(kFrameData, 0, stream, fifteen_k) + Http2Frame(kFrameData, 0, stream, fifteen_k);
  }
  client.Send(bytes);
  // 60 KiB fit; the stream that takes the connection past 64 KiB is refused.
  uint32_t code = 0;
  ASSERT_TRUE(client.WaitForFrame(kFrameRstStream, 5, 5s, &code));
  EXPECT_EQ(code, 0x7u);  // REFUSED_STREAM
  EXPECT_EQ(Stats().refused_request_bytes, 1u);
  // The streams within the bound are still served.
  client.Send(Http2Frame(kFrameData, kFlagEndStream, 1, "end"));
  EXPECT_TRUE(client.WaitForFrame(kFrameHeaders, 1, 5s));
}

TEST_F(ListenerLimitsTest, HalfSentBodiesOnManyConnectionsAreBoundedPerSource) {
  Start(Http2ServerOptions{.max_connection_request_bytes = 64 * 1024, .max_source_request_bytes = 96 * 1024});
  // 30 KiB of body in two frames (a frame is at most 16 KiB).
  const std::string fifteen_k(15 * 1024, 'b');
  const auto thirty_k_on = [&](uint32_t stream) {
    return Http2Frame(kFrameData, 0, stream, fifteen_k) + Http2Frame(kFrameData, 0, stream, fifteen_k);
  };
  RawClient first = RawClient::Unix(path_);
  // The PING's answer says the server has read everything sent before it.
  const std::string ping = Http2Frame(sigil::testing::kFramePing, 0, 0, std::string(8, '\0'));
  first.Send(Http2ClientPreface() + Http2OpenRequest(1) + thirty_k_on(1) + Http2OpenRequest(3) +
             thirty_k_on(3) + ping);
  ASSERT_TRUE(first.WaitForFrame(sigil::testing::kFramePing, 0, 5s));
  // Within its connection's 64 KiB, but the source's 96 KiB is passed by the second stream.
  RawClient second = RawClient::Unix(path_);
  second.Send(Http2ClientPreface() + Http2OpenRequest(1) + thirty_k_on(1) + Http2OpenRequest(3) +
              thirty_k_on(3));
  uint32_t code = 0;
  ASSERT_TRUE(second.WaitForFrame(kFrameRstStream, 3, 5s, &code));
  EXPECT_EQ(code, 0x7u);  // REFUSED_STREAM
  EXPECT_EQ(Stats().refused_request_bytes, 1u);
  // Once the first connection goes, what it held no longer counts against the source.
  { RawClient gone = std::move(first); }
  ASSERT_TRUE(WaitUntil([&] { return Connections() == 1; }, 5s));
  RawClient third = RawClient::Unix(path_);
  third.Send(Http2ClientPreface() + Http2OpenRequest(1) + thirty_k_on(1) +
             Http2Frame(kFrameData, kFlagEndStream, 1, "end"));
  EXPECT_TRUE(third.WaitForFrame(kFrameHeaders, 1, 5s));
  EXPECT_EQ(Stats().refused_request_bytes, 1u);
}

TEST_F(ListenerLimitsTest, AReaderThatNeverReadsLosesItsStreamNotTheServersMemory) {
  // Four 512 KiB writes against a 1 MiB bound per stream; the peer's 64 KiB window lets
  // almost nothing leave, so the third write finds the stream over its bound.
  Start(Http2ServerOptions{.max_stream_unsent_bytes = 1 << 20});
  RawClient reader = RawClient::Unix(path_);
  // GET (2), http, :path /big as a literal, :authority localhost.
  reader.Send(Http2ClientPreface() +
              Http2Frame(kFrameHeaders, kFlagEndHeaders | kFlagEndStream, 1, std::string_view("\x82\x86\x04\x04/big\x01\x09localhost")));
  uint32_t code = 0;
  ASSERT_TRUE(reader.WaitForFrame(kFrameRstStream, 1, 5s, &code));
  EXPECT_EQ(code, 0xbu);  // ENHANCE_YOUR_CALM
  EXPECT_EQ(Stats().slow_reader_resets, 1u);
  EXPECT_TRUE(GoodRequest());
}

// GET `path` (a literal, shorter than 127 bytes), http, :authority localhost, whole.
std::string Get(uint32_t stream_id, std::string_view path) {
  std::string block = "\x82\x86\x04";
  block += static_cast<char>(path.size());
  block += path;
  block += std::string_view("\x01\x09localhost");
  return Http2Frame(kFrameHeaders, kFlagEndHeaders | kFlagEndStream, stream_id, block);
}

std::string Cancel(uint32_t stream_id) { return sigil::testing::Http2RstStream(stream_id, sigil::testing::kErrorCancel); }

TEST_F(ListenerLimitsTest, StreamsResetBeforeTheirAnswerBeyondTheBucketEndTheConnection) {
  Start(Http2ServerOptions{.premature_resets_per_second = 1, .premature_reset_burst = 10});
  RawClient flood = RawClient::Unix(path_);
  // Each request is answered as soon as it is read, but its reset arrives in the same read,
  // before the answer could leave: nobody reads what the server did.
  std::string requests = Http2ClientPreface();
  for (uint32_t i = 0; i < 40; ++i) requests += Get(2 * i + 1, "/") + Cancel(2 * i + 1);
  flood.Send(requests);
  uint32_t code = 0;
  ASSERT_TRUE(flood.WaitForFrame(sigil::testing::kFrameGoaway, 0, 5s));
  for (const auto& frame : sigil::testing::Http2Frames(flood.received())) {
    if (frame.type == sigil::testing::kFrameGoaway) code = sigil::testing::Http2ErrorCode(frame);
  }
  EXPECT_EQ(code, sigil::testing::kErrorEnhanceYourCalm);
  EXPECT_TRUE(flood.WaitForClose(5s));
  EXPECT_EQ(Stats().reset_floods, 1u);
  EXPECT_TRUE(ErrorMentions("premature_resets_per_second"));
  EXPECT_TRUE(GoodRequest());
}

TEST_F(ListenerLimitsTest, StreamsResetAfterTheirAnswerBeganNeverEndTheConnection) {
  Start(Http2ServerOptions{.premature_resets_per_second = 1, .premature_reset_burst = 10});
  RawClient watcher = RawClient::Unix(path_);
  watcher.Send(Http2ClientPreface());
  // A watch read once and cancelled, as a client fetching its SVID does, five times the bucket.
  for (uint32_t i = 0; i < 50; ++i) {
    const uint32_t id = 2 * i + 1;
    watcher.Send(Get(id, "/watch"));
    ASSERT_TRUE(watcher.WaitForFrame(kFrameData, id, 5s)) << "stream " << id << " was not answered";
    watcher.Send(Cancel(id));
  }
  watcher.Send(Http2Frame(sigil::testing::kFramePing, 0, 0, std::string(8, 'p')));
  EXPECT_TRUE(watcher.WaitForFrame(sigil::testing::kFramePing, 0, 5s)) << "the connection was ended";
  EXPECT_EQ(Stats().reset_floods, 0u);
}

}  // namespace
}  // namespace sigil::transport
