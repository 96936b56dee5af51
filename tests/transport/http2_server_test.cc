// The HTTP/2 server against a real curl: over TLS on TCP and in plaintext on a Unix socket,
// with the size limits, peer credentials and a graceful stop.
#include "transport/http2_server.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>

#include "tests/support/process.h"
#include "tests/support/test_pki.h"
#include "transport/event_loop.h"
#include "transport/http2_client.h"
#include "transport/tls.h"

namespace sigil::transport {
namespace {

using sigil::testing::ChildProcess;
using sigil::testing::RunProcess;
using sigil::testing::TempDir;
using sigil::testing::TestCa;
using sigil::testing::WaitUntil;

// Answers "<method> <path> <body bytes>" and, on a Unix socket, the peer's pid and uid.
void Echo(std::shared_ptr<Http2ServerStream> s) {
  const Http2Request& r = s->request();
  std::string body = r.method + " " + r.path + " " + std::to_string(r.body.size());
  if (s->peer().credentials) {
    body += " pid=" + std::to_string(s->peer().credentials->pid) +
            " uid=" + std::to_string(s->peer().credentials->uid) + " groups=";
    for (gid_t group : s->peer().credentials->supplementary_groups.value_or(std::vector<gid_t>{})) {
      body += std::to_string(group) + ",";
    }
  }
  s->Respond(200, {{"content-type", "text/plain"}, {"x-sigil", "yes"}});
  s->Write(body);
  s->End();
}

class Http2ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { loop_.Start(); }
  void TearDown() override {
    if (server_) loop_.loop().Invoke([&] { server_.reset(); });
    loop_.Stop();
  }

  void StartServer(Http2ServerOptions options, Http2Handler handler) {
    loop_.loop().Invoke([&] {
      server_ = std::make_unique<Http2Server>(&loop_.loop(), options, std::move(handler));
    });
  }

  int ListenTls() {
    auto creds = TlsCredentials::FromPem(svid_.CertPem(), svid_.KeyPem());
    EXPECT_TRUE(creds.ok()) << creds.status().ToString();
    auto ctx = TlsContext::CreateServer(TlsOptions{.credentials = *creds});
    EXPECT_TRUE(ctx.ok()) << ctx.status().ToString();
    return loop_.loop().Invoke([&] {
      Status st = server_->ListenTcp(TcpListenerOptions{}, *ctx);
      EXPECT_TRUE(st.ok()) << st.ToString();
      return server_->tcp_port();
    });
  }

  std::string ListenUnix() {
    std::string path = (dir_ / "sock" / "h2.sock").string();
    Status st = loop_.loop().Invoke([&] {
      return server_->ListenUnix(UnixListenerOptions{.path = path, .file_mode = 0660,
                                                     .dir_mode = 0750});
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return path;
  }

  std::vector<std::string> CurlTls(int port, std::vector<std::string> extra) {
    sigil::testing::WriteFile(dir_ / "ca.pem", ca_.CertPem());
    std::vector<std::string> argv = {
        "curl", "-sS", "--http2", "--cacert", (dir_ / "ca.pem").string(),
        "--resolve", "localhost:" + std::to_string(port) + ":127.0.0.1",
        "-w", "\n%{http_code} %{http_version}"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  Http2Server::Stats Stats() {
    return loop_.loop().Invoke([&] { return server_->stats(); });
  }

  TempDir dir_;
  TestCa ca_{"example.org"};
  sigil::testing::TestCert svid_ = ca_.IssueSvid("spiffe://example.org/server");
  LoopThread loop_;
  std::unique_ptr<Http2Server> server_;
};

TEST_F(Http2ServerTest, CurlOverTlsNegotiatesH2AndGetsTheResponse) {
  StartServer({}, Echo);
  int port = ListenTls();
  auto out = RunProcess(CurlTls(port, {"https://localhost:" + std::to_string(port) + "/hello"}));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->exit_code, 0) << out->err;
  EXPECT_EQ(out->out, "GET /hello 0\n200 2");
}

TEST_F(Http2ServerTest, CurlPostsABodyOverTls) {
  StartServer({}, Echo);
  int port = ListenTls();
  auto out = RunProcess(CurlTls(port, {"--data-binary", std::string(100'000, 'x'),
                                       "https://localhost:" + std::to_string(port) + "/upload"}));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->out, "POST /upload 100000\n200 2") << out->err;
}

TEST_F(Http2ServerTest, CurlWithPriorKnowledgeOverAUnixSocketSeesItsOwnCredentials) {
  StartServer({}, Echo);
  std::string path = ListenUnix();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  ASSERT_EQ(::stat((dir_ / "sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0750u);

  auto curl = ChildProcess::Start({"curl", "-sS", "--http2-prior-knowledge", "--unix-socket", path,
                                   "-w", "\n%{http_code} %{http_version}",
                                   "http://localhost/who"},
                                  dir_.path());
  ASSERT_TRUE(curl.ok());
  pid_t pid = curl->pid();
  ASSERT_TRUE(curl->Wait(std::chrono::seconds(20)).has_value());
  // curl runs with this process's supplementary groups; the kernel keeps them sorted.
  std::vector<gid_t> groups(static_cast<size_t>(::getgroups(0, nullptr)));
  ASSERT_EQ(::getgroups(static_cast<int>(groups.size()), groups.data()), static_cast<int>(groups.size()));
  std::sort(groups.begin(), groups.end());
  std::string expected_groups;
  for (gid_t group : groups) expected_groups += std::to_string(group) + ",";
  EXPECT_EQ(curl->stdout_text(), "GET /who 0 pid=" + std::to_string(pid) +
                                     " uid=" + std::to_string(::getuid()) + " groups=" + expected_groups +
                                     "\n200 2")
      << curl->stderr_text();
}

TEST_F(Http2ServerTest, OversizedHeadersGet431AndTheConnectionStaysUsable) {
  StartServer(Http2ServerOptions{.max_header_list_bytes = 4096}, Echo);
  int port = ListenTls();
  std::string base = "https://localhost:" + std::to_string(port);
  // Two requests on one connection: the first too large, the second normal.
  auto out = RunProcess(CurlTls(port, {"-H", "x-big: " + std::string(8000, 'a'), base + "/big",
                                       "--next", "--http2", "--cacert", (dir_ / "ca.pem").string(),
                                       "--resolve",
                                       "localhost:" + std::to_string(port) + ":127.0.0.1", "-w",
                                       " %{http_code}", base + "/small"}));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->out, "\n431 2GET /small 0 200") << out->err;
  EXPECT_EQ(Stats().accepted, 1u);
}

TEST_F(Http2ServerTest, OversizedBodyGets413) {
  StartServer(Http2ServerOptions{.max_request_body_bytes = 1000}, Echo);
  std::string path = ListenUnix();
  auto out = RunProcess({"curl", "-sS", "--http2-prior-knowledge", "--unix-socket", path, "-o",
                         "/dev/null", "-w", "%{http_code}", "--data-binary",
                         std::string(5000, 'x'), "http://localhost/upload"});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->out, "413") << out->err;
}

TEST_F(Http2ServerTest, GracefulStopLetsAnInFlightStreamFinish) {
  std::shared_ptr<Http2ServerStream> held;
  StartServer({}, [&](std::shared_ptr<Http2ServerStream> s) { held = std::move(s); });
  std::string path = ListenUnix();
  auto curl = ChildProcess::Start({"curl", "-sS", "--http2-prior-knowledge", "--unix-socket", path,
                                   "http://localhost/slow"},
                                  dir_.path());
  ASSERT_TRUE(curl.ok());
  ASSERT_TRUE(WaitUntil([&] { return loop_.loop().Invoke([&] { return held != nullptr; }); }));

  std::atomic<bool> stopped = false;
  std::thread stopper([&] {
    loop_.Stop(std::chrono::seconds(10));
    stopped = true;
  });
  // The listener goes away at once; the accepted stream is still served.
  ASSERT_TRUE(WaitUntil([&] { return !std::filesystem::exists(path); }));
  EXPECT_FALSE(stopped);
  loop_.loop().Post([&] {
    held->Respond(200, {});
    held->Write("finished after stop");
    held->End();
    held.reset();
  });
  stopper.join();
  EXPECT_TRUE(stopped);
  ASSERT_TRUE(curl->Wait(std::chrono::seconds(10)).has_value());
  EXPECT_EQ(curl->stdout_text(), "finished after stop") << curl->stderr_text();
  server_.reset();  // the loop has finished; nothing of the server remains to close
}


// Sigil's HTTP/2 client over plaintext on a Unix socket, `n` GET requests at once; returns how
// many got 200 with the expected body size.
int FetchMany(EventLoop* loop, const std::string& path, int n, size_t body_size,
              Http2ClientOptions options = {}) {
  std::shared_ptr<Http2Client> client;
  std::vector<std::shared_ptr<Http2ClientStream>> streams;
  std::atomic<int> good = 0;
  std::atomic<int> finished = 0;
  loop->Invoke([&] {
    client = Http2Client::Connect(loop, Endpoint::Unix(path), nullptr, options);
    for (int i = 0; i < n; ++i) {
      auto size = std::make_shared<size_t>(0);
      auto status = std::make_shared<int>(0);
      streams.push_back(client->Submit(
          "GET", "/" + std::to_string(i), {}, "",
          Http2ResponseHandler{
              .on_headers = [status](int s, const Headers&, bool) { *status = s; },
              .on_data = [size](std::string_view d) { *size += d.size(); },
              .on_close =
                  [&, size, status](const Status& st, const Headers&) {
                    if (st.ok() && *status == 200 && *size == body_size) good.fetch_add(1);
                    finished.fetch_add(1);
                  }}));
    }
  });
  EXPECT_TRUE(WaitUntil([&] { return finished.load() == n; }, std::chrono::seconds(30)));
  loop->Invoke([&] {
    streams.clear();
    client.reset();
  });
  return good.load();
}

TEST_F(Http2ServerTest, ConcurrentStreamsNeverExceedTheAdvertisedLimit) {
  for (uint32_t limit : {2u, 64u}) {
    int active = 0;
    int peak = 0;
    StartServer(Http2ServerOptions{.max_concurrent_streams = limit},
                [&](std::shared_ptr<Http2ServerStream> s) {
                  peak = std::max(peak, ++active);
                  s->SetOnClose([&](uint32_t) { --active; });
                  // Answer on a later loop turn so streams overlap.
                  s->loop()->Post([s] {
                    s->Respond(200, {});
                    s->Write("x");
                    s->End();
                  });
                });
    std::string path = ListenUnix();
    LoopThread client_loop;
    client_loop.Start();
    EXPECT_EQ(FetchMany(&client_loop.loop(), path, 40, 1), 40);
    client_loop.Stop();
    int seen = loop_.loop().Invoke([&] { return peak; });
    if (limit == 2) {
      EXPECT_EQ(seen, 2);
    } else {
      EXPECT_GT(seen, 2);  // the same test can tell the limit apart from serial clients
    }
    loop_.loop().Invoke([&] { server_.reset(); });
  }
}

TEST_F(Http2ServerTest, FlowControlCarriesResponsesLargerThanTheWindows) {
  const size_t kBody = 3 << 20;
  StartServer({}, [&](std::shared_ptr<Http2ServerStream> s) {
    s->Respond(200, {});
    for (size_t sent = 0; sent < kBody; sent += 256 * 1024) s->Write(std::string(256 * 1024, 'b'));
    s->End();
  });
  std::string path = ListenUnix();
  LoopThread client_loop;
  client_loop.Start();
  // 16 KiB stream windows and a 64 KiB connection window: the transfer needs WINDOW_UPDATEs.
  EXPECT_EQ(FetchMany(&client_loop.loop(), path, 4, kBody,
                      Http2ClientOptions{.initial_stream_window = 16 * 1024,
                                         .connection_window = 64 * 1024}),
            4);
  client_loop.Stop();
}

}  // namespace
}  // namespace sigil::transport
