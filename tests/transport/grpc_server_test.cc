// The gRPC server against the stock Python gRPC client (grpcio) on a Unix socket: unary and
// server-streaming calls, statuses and trailers, metadata, deadlines and cancellation.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "echo.pb.h"
#include "tests/support/process.h"
#include "transport/event_loop.h"
#include "transport/grpc.h"
#include "transport/http2_server.h"

namespace sigil::transport {
namespace {

using sigil::testing::RunProcess;
using sigil::testing::TempDir;
using sigil::testing::WaitUntil;

// Serves sigil.test.Echo; counts what the handlers observe so tests can assert on the server
// side of each call too.
class EchoService {
 public:
  explicit EchoService(GrpcRouter* router) {
    router->RegisterUnary("/sigil.test.Echo/Say", [this](auto call, std::string bytes) {
      sigil::test::EchoRequest req;
      if (!req.ParseFromString(bytes)) {
        call->Finish(InvalidArgumentError("bad EchoRequest"));
        return;
      }
      if (req.code() != 0) {
        call->Finish(Status(static_cast<Code>(req.code()), req.message()));
        return;
      }
      sigil::test::EchoReply reply;
      std::string uid = call->peer().credentials
                            ? std::to_string(call->peer().credentials->uid)
                            : std::string("?");
      reply.set_text(req.text() + " " + std::string(call->Metadata("x-who")) + " uid=" + uid);
      call->AddInitialMetadata("x-initial", "early");
      call->AddTrailingMetadata("x-trailer", "done");
      call->Write(reply.SerializeAsString());
      call->Finish(Status::Ok());
    });
    router->RegisterServerStreaming("/sigil.test.Echo/Repeat", [this](auto call, std::string bytes) {
      sigil::test::EchoRequest req;
      req.ParseFromString(bytes);
      if (req.count() >= 0) {
        for (int i = 0; i < req.count(); ++i) {
          sigil::test::EchoReply reply;
          reply.set_text(req.text() + std::to_string(i));
          reply.set_index(i);
          call->Write(reply.SerializeAsString());
        }
        call->Finish(Status::Ok());
        return;
      }
      // Endless: a worker thread writes until the client cancels, as a handler that completes
      // off the loop would.
      auto stop = std::make_shared<std::atomic<bool>>(false);
      call->OnCancel([this, stop] {
        stop->store(true);
        cancelled_streams.fetch_add(1);
      });
      workers_.emplace_back([call, stop, text = req.text()] {
        for (int i = 0; !stop->load() && i < 2000; ++i) {
          sigil::test::EchoReply reply;
          reply.set_text(text + std::to_string(i));
          call->Write(reply.SerializeAsString());
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      });
    });
    router->RegisterUnary("/sigil.test.Echo/Hang", [this](auto call, std::string) {
      had_deadline = call->deadline().has_value();
      call->OnCancel([this] { cancelled_hangs.fetch_add(1); });
      hanging_.push_back(call);  // never answered: the deadline ends it
    });
  }
  ~EchoService() { JoinWorkers(); }

  void JoinWorkers() {
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::atomic<int> cancelled_streams = 0;
  std::atomic<int> cancelled_hangs = 0;
  std::atomic<bool> had_deadline = false;

 private:
  std::vector<std::thread> workers_;
  std::vector<std::shared_ptr<GrpcServerCall>> hanging_;
};

TEST(GrpcServer, PythonGrpcClientCallsUnaryAndStreamingMethodsOverAUnixSocket) {
  TempDir dir;
  auto stubs = RunProcess({"/usr/bin/python3", "-m", "grpc_tools.protoc", "-I",
                           SIGIL_TRANSPORT_TEST_DIR, "--python_out=" + dir.path().string(),
                           "--grpc_python_out=" + dir.path().string(), "echo.proto"});
  ASSERT_TRUE(stubs.ok());
  ASSERT_EQ(stubs->exit_code, 0) << stubs->err;

  LoopThread loop;
  GrpcRouter router;
  EchoService service(&router);
  std::unique_ptr<Http2Server> server;
  std::string path = (dir / "api.sock").string();
  loop.Start();
  loop.loop().Invoke([&] {
    server = std::make_unique<Http2Server>(&loop.loop(), Http2ServerOptions{},
                                           router.AsHttp2Handler());
    ASSERT_TRUE(server->ListenUnix(UnixListenerOptions{.path = path}).ok());
  });

  auto run = RunProcess({"/usr/bin/python3", std::string(SIGIL_TRANSPORT_TEST_DIR) +
                                                 "/grpc_echo_client.py",
                         dir.path().string(), "unix://" + path},
                        {}, std::chrono::seconds(60));
  ASSERT_TRUE(run.ok());
  ASSERT_EQ(run->exit_code, 0) << run->err;
  auto out = nlohmann::json::parse(run->out);

  EXPECT_EQ(out["say"], "hi alice uid=" + std::to_string(::getuid()));
  EXPECT_EQ(out["say_code"], "OK");
  EXPECT_EQ(out["say_initial"]["x-initial"], "early");
  EXPECT_EQ(out["say_trailing"]["x-trailer"], "done");

  EXPECT_EQ(out["error_code"], "PERMISSION_DENIED");
  EXPECT_EQ(out["error_details"], "no identity issued: 100% sure");

  EXPECT_EQ(out["stream"], nlohmann::json::array({"r0", "r1", "r2"}));

  EXPECT_EQ(out["deadline_code"], "DEADLINE_EXCEEDED");
  EXPECT_TRUE(WaitUntil([&] { return service.cancelled_hangs.load() == 1; }));
  EXPECT_TRUE(service.had_deadline);

  EXPECT_EQ(out["endless_first"], "e0");
  EXPECT_EQ(out["endless_after_cancel"], "CANCELLED");
  EXPECT_TRUE(WaitUntil([&] { return service.cancelled_streams.load() == 1; }));

  EXPECT_EQ(out["unknown_code"], "UNIMPLEMENTED");

  service.JoinWorkers();
  loop.loop().Invoke([&] { server.reset(); });
  loop.Stop();
}

TEST(GrpcFraming, TimeoutsParseInEveryUnitAndRejectJunk) {
  using namespace std::chrono;
  EXPECT_EQ(*ParseGrpcTimeout("100m"), milliseconds(100));
  EXPECT_EQ(*ParseGrpcTimeout("2S"), seconds(2));
  EXPECT_EQ(*ParseGrpcTimeout("1H"), hours(1));
  EXPECT_EQ(*ParseGrpcTimeout("3M"), minutes(3));
  EXPECT_EQ(*ParseGrpcTimeout("7u"), microseconds(7));
  EXPECT_EQ(*ParseGrpcTimeout("99999999n"), nanoseconds(99999999));
  EXPECT_FALSE(ParseGrpcTimeout("123456789S").ok());  // nine digits
  EXPECT_FALSE(ParseGrpcTimeout("10x").ok());
  EXPECT_FALSE(ParseGrpcTimeout("S").ok());
  EXPECT_FALSE(ParseGrpcTimeout("-1S").ok());
  EXPECT_EQ(*ParseGrpcTimeout(FormatGrpcTimeout(milliseconds(1500))), milliseconds(1500));
}

TEST(GrpcFraming, MessagesSplitAcrossReadsAndLimitsHold) {
  std::string wire = GrpcFrame("hello") + GrpcFrame("") + GrpcFrame("world");
  std::string buffer = wire.substr(0, 7);
  std::vector<std::string> msgs;
  ASSERT_TRUE(GrpcTakeMessages(&buffer, &msgs).ok());
  EXPECT_TRUE(msgs.empty());
  buffer += wire.substr(7);
  ASSERT_TRUE(GrpcTakeMessages(&buffer, &msgs).ok());
  EXPECT_EQ(msgs, (std::vector<std::string>{"hello", "", "world"}));
  EXPECT_TRUE(buffer.empty());

  std::string big = GrpcFrame(std::string(100, 'x'));
  EXPECT_EQ(GrpcTakeMessages(&big, &msgs, 50).code(), Code::kResourceExhausted);
  std::string compressed = GrpcFrame("x");
  compressed[0] = 1;
  EXPECT_EQ(GrpcTakeMessages(&compressed, &msgs).code(), Code::kUnimplemented);
}

TEST(GrpcFraming, StatusMessagesArePercentEncoded) {
  EXPECT_EQ(PercentEncodeGrpcMessage("50% done\n"), "50%25 done%0A");
  EXPECT_EQ(PercentDecodeGrpcMessage("50%25 done%0A"), "50% done\n");
  EXPECT_EQ(PercentDecodeGrpcMessage("bad %zz"), "bad %zz");
  EXPECT_EQ(PercentDecodeGrpcMessage(PercentEncodeGrpcMessage("caf\xc3\xa9")), "caf\xc3\xa9");
}

}  // namespace
}  // namespace sigil::transport
