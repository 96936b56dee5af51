// Sigil's own gRPC client against Sigil's gRPC server on a Unix socket: what `agentd api fetch`
// will use to call the Workload API.
#include <gtest/gtest.h>

#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

#include "echo.pb.h"
#include "tests/support/process.h"
#include "tests/transport/echo_service.h"
#include "transport/event_loop.h"
#include "transport/grpc_client.h"
#include "transport/http2_server.h"

namespace sigil::transport {
namespace {

using sigil::testing::TempDir;

std::string Request(const std::string& text, int count = 0, int code = 0,
                    const std::string& message = "") {
  sigil::test::EchoRequest r;
  r.set_text(text);
  r.set_count(count);
  r.set_code(code);
  r.set_message(message);
  return r.SerializeAsString();
}

std::string TextOf(const std::string& bytes) {
  sigil::test::EchoReply r;
  EXPECT_TRUE(r.ParseFromString(bytes));
  return r.text();
}

class GrpcClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_.Start();
    loop_.loop().Invoke([&] {
      server_ = std::make_unique<Http2Server>(&loop_.loop(), Http2ServerOptions{},
                                              router_.AsHttp2Handler());
      Status st = server_->ListenUnix(UnixListenerOptions{.path = path_});
      ASSERT_TRUE(st.ok()) << st.ToString();
    });
  }
  void TearDown() override {
    service_.JoinWorkers();
    loop_.loop().Invoke([&] { server_.reset(); });
    loop_.Stop();
  }

  TempDir dir_;
  std::string path_ = (dir_ / "api.sock").string();
  Endpoint endpoint_ = Endpoint::Unix(path_);
  GrpcRouter router_;
  EchoService service_{&router_};
  LoopThread loop_;
  std::unique_ptr<Http2Server> server_;
};

TEST_F(GrpcClientTest, UnaryCallReturnsTheReplyAndSendsMetadata) {
  auto reply = GrpcUnaryBlocking(endpoint_, "/sigil.test.Echo/Say", Request("hello"),
                                 GrpcCallOptions{.metadata = {{"x-who", "bob"}}});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(TextOf(*reply).substr(0, 9), "hello bob");
}

TEST_F(GrpcClientTest, ErrorStatusAndMessageCrossTheWire) {
  auto reply = GrpcUnaryBlocking(endpoint_, "/sigil.test.Echo/Say",
                                 Request("", 0, 7, "no identity issued\nat all"));
  EXPECT_EQ(reply.status().code(), Code::kPermissionDenied);
  EXPECT_EQ(reply.status().message(), "no identity issued\nat all");
  auto unknown = GrpcUnaryBlocking(endpoint_, "/sigil.test.Echo/Missing", "");
  EXPECT_EQ(unknown.status().code(), Code::kUnimplemented);
}

TEST_F(GrpcClientTest, ServerStreamingDeliversEveryMessageInOrder) {
  std::vector<std::string> got;
  Status st = GrpcServerStreamingBlocking(endpoint_, "/sigil.test.Echo/Repeat", Request("m", 50),
                                          [&](std::string m) {
                                            got.push_back(TextOf(m));
                                            return true;
                                          });
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(got.size(), 50u);
  EXPECT_EQ(got.front(), "m0");
  EXPECT_EQ(got.back(), "m49");
}

TEST_F(GrpcClientTest, StoppingAStreamCancelsItOnTheServer) {
  int seen = 0;
  Status st = GrpcServerStreamingBlocking(endpoint_, "/sigil.test.Echo/Repeat", Request("e", -1),
                                          [&](std::string) { return ++seen < 3; });
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(seen, 3);
  EXPECT_TRUE(sigil::testing::WaitUntil([&] { return service_.cancelled_streams.load() == 1; }));
}

TEST_F(GrpcClientTest, DeadlineEndsACallTheServerNeverAnswers) {
  auto start = std::chrono::steady_clock::now();
  auto reply = GrpcUnaryBlocking(endpoint_, "/sigil.test.Echo/Hang", Request("x"),
                                 GrpcCallOptions{.timeout = std::chrono::milliseconds(200)});
  EXPECT_EQ(reply.status().code(), Code::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(sigil::testing::WaitUntil([&] { return service_.cancelled_hangs.load() == 1; }));
  EXPECT_TRUE(service_.had_deadline);
}

TEST_F(GrpcClientTest, ManyConcurrentCallsShareOneConnection) {
  std::atomic<int> ok = 0;
  std::vector<std::shared_ptr<GrpcClientCall>> calls;
  std::unique_ptr<GrpcChannel> channel;
  LoopThread client_loop;
  client_loop.Start();
  client_loop.loop().Invoke([&] {
    channel = std::make_unique<GrpcChannel>(&client_loop.loop(), endpoint_);
    for (int i = 0; i < 300; ++i) {  // more than max_concurrent_streams (128): nghttp2 queues
      calls.push_back(channel->CallUnary("/sigil.test.Echo/Say", Request(std::to_string(i)), {},
                                         [&, i](Result<std::string> r) {
                                           if (r.ok() && TextOf(*r).starts_with(
                                                             std::to_string(i) + " ")) {
                                             ok.fetch_add(1);
                                           }
                                         }));
    }
  });
  EXPECT_TRUE(sigil::testing::WaitUntil([&] { return ok.load() == 300; }));
  EXPECT_EQ(loop_.loop().Invoke([&] { return server_->stats().accepted; }), 1u);
  client_loop.loop().Invoke([&] {
    calls.clear();
    channel.reset();
  });
  client_loop.Stop();
}

// Every connection on a loop reads into the loop's one read buffer: large messages on many
// connections at once arrive in many reads, interleaved, and each must keep its own bytes.
TEST_F(GrpcClientTest, ManyConnectionsReadingAtOnceKeepTheirBytesApart) {
  constexpr int kConnections = 16;
  constexpr int kCallsEach = 4;
  std::atomic<int> ok = 0;
  std::atomic<int> done = 0;
  std::vector<std::unique_ptr<GrpcChannel>> channels;
  std::vector<std::shared_ptr<GrpcClientCall>> calls;
  LoopThread client_loop;
  client_loop.Start();
  client_loop.loop().Invoke([&] {
    for (int c = 0; c < kConnections; ++c) {
      channels.push_back(std::make_unique<GrpcChannel>(&client_loop.loop(), endpoint_));
      for (int k = 0; k < kCallsEach; ++k) {
        // 200 KB per message, three times the read buffer, a different pattern per call.
        std::string text(200 * 1000, static_cast<char>('A' + c));
        for (size_t at = static_cast<size_t>(k); at < text.size(); at += 997) text[at] = static_cast<char>('a' + k);
        calls.push_back(channels.back()->CallUnary("/sigil.test.Echo/Say", Request(text), {},
                                                   [&, text](Result<std::string> r) {
                                                     if (r.ok() && TextOf(*r).starts_with(text + " ")) ok.fetch_add(1);
                                                     done.fetch_add(1);
                                                   }));
      }
    }
  });
  EXPECT_TRUE(sigil::testing::WaitUntil([&] { return done.load() == kConnections * kCallsEach; },
                                        std::chrono::seconds(30)));
  EXPECT_EQ(ok.load(), kConnections * kCallsEach);
  EXPECT_EQ(loop_.loop().Invoke([&] { return server_->stats().accepted; }), static_cast<uint64_t>(kConnections));
  client_loop.loop().Invoke([&] {
    calls.clear();
    channels.clear();
  });
  client_loop.Stop();
}

// After a GOAWAY the server still serves the streams it accepted; the channel's next call opens
// a new connection but must not end the calls still running on the old one.
TEST_F(GrpcClientTest, ACallAcceptedBeforeAGoawayKeepsRunningWhileTheChannelMovesOn) {
  std::mutex mu;
  int messages = 0;
  std::optional<Status> stream_done;
  std::optional<Status> later_call_done;
  std::unique_ptr<GrpcChannel> channel;
  std::shared_ptr<GrpcClientCall> stream;
  std::shared_ptr<GrpcClientCall> later;
  LoopThread client_loop;
  client_loop.Start();
  client_loop.loop().Invoke([&] {
    channel = std::make_unique<GrpcChannel>(&client_loop.loop(), endpoint_);
    stream = channel->CallServerStreaming(
        "/sigil.test.Echo/Repeat", Request("s", -1), {},
        [&](std::string) {
          std::lock_guard lock(mu);
          ++messages;
        },
        [&](Status st) {
          std::lock_guard lock(mu);
          stream_done = st;
        });
  });
  const auto seen = [&] {
    std::lock_guard lock(mu);
    return messages;
  };
  ASSERT_TRUE(sigil::testing::WaitUntil([&] { return seen() >= 3; }));
  loop_.loop().Invoke([&] { server_->Shutdown(); });  // GOAWAY; the listener goes away
  ASSERT_TRUE(sigil::testing::WaitUntil([&] { return !std::filesystem::exists(path_); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the GOAWAY reaches the client

  client_loop.loop().Invoke([&] {
    later = channel->CallUnary("/sigil.test.Echo/Say", Request("late"), {}, [&](Result<std::string> r) {
      std::lock_guard lock(mu);
      later_call_done = r.status();
    });
  });
  ASSERT_TRUE(sigil::testing::WaitUntil([&] {
    std::lock_guard lock(mu);
    return later_call_done.has_value();
  }));
  EXPECT_EQ(later_call_done->code(), Code::kUnavailable) << later_call_done->ToString();  // no listener now
  const int before = seen();
  ASSERT_TRUE(sigil::testing::WaitUntil([&] { return seen() >= before + 5; }))
      << "the stream accepted before the GOAWAY stopped";
  {
    std::lock_guard lock(mu);
    EXPECT_FALSE(stream_done.has_value()) << stream_done->ToString();
  }
  client_loop.loop().Invoke([&] {
    stream->Cancel();
    stream.reset();
    later.reset();
    channel.reset();
  });
  client_loop.Stop();
}

TEST(GrpcClient, NoServerMeansUnavailable) {
  TempDir dir;
  auto reply = GrpcUnaryBlocking(Endpoint::Unix((dir / "nobody.sock").string()),
                                 "/sigil.test.Echo/Say", "");
  EXPECT_EQ(reply.status().code(), Code::kUnavailable) << reply.status().ToString();
}

}  // namespace
}  // namespace sigil::transport
