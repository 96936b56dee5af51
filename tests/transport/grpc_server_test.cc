// The gRPC server against the stock Python gRPC client (grpcio) on a Unix socket: unary and
// server-streaming calls, statuses and trailers, metadata, deadlines and cancellation.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "echo.pb.h"
#include "tests/transport/echo_service.h"
#include "tests/support/process.h"
#include "transport/event_loop.h"
#include "transport/grpc.h"
#include "transport/http2_server.h"

namespace sigil::transport {
namespace {

using sigil::testing::RunProcess;
using sigil::testing::TempDir;
using sigil::testing::WaitUntil;

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

TEST(GrpcFraming, TimeoutsLongerThanTenYearsAreClampedWithoutOverflow) {
  using namespace std::chrono;
  const nanoseconds ten_years = hours(24 * 365 * 10);
  EXPECT_EQ(*ParseGrpcTimeout("99999999H"), ten_years);
  EXPECT_EQ(*ParseGrpcTimeout("99999999M"), ten_years);
  EXPECT_EQ(*ParseGrpcTimeout("87600H"), ten_years);
  EXPECT_EQ(*ParseGrpcTimeout("87599H"), hours(87599));
  EXPECT_EQ(*ParseGrpcTimeout("99999999S"), seconds(99999999));
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
