// Transport throughput and latency:
//  - unary gRPC calls over a Unix socket (Sigil's client → Sigil's server, one loop each), at 1
//    and 32 calls in flight, reporting calls/s and p50/p99 latency;
//  - HTTP/2 requests over TLS driven by h2load (nghttp2-client) against Sigil's server.
//
// Run: build/bench/transport_bench [--benchmark_filter=…]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstdlib>

#include "tests/support/process.h"
#include "tests/support/test_pki.h"
#include "transport/event_loop.h"
#include "transport/grpc.h"
#include "transport/grpc_client.h"
#include "transport/http2_server.h"
#include "transport/tls.h"

namespace sigil::transport {
namespace {

using Clock = std::chrono::steady_clock;

// A gRPC echo server on a loop thread of its own.
struct EchoServer {
  sigil::testing::TempDir dir{"sigil-bench"};
  std::string path = (dir / "bench.sock").string();
  GrpcRouter router;
  LoopThread loop;
  std::unique_ptr<Http2Server> server;

  EchoServer() {
    router.RegisterUnary("/bench.Echo/Say", [](std::shared_ptr<GrpcServerCall> call,
                                               std::string request) {
      call->Write(std::move(request));
      call->Finish(Status::Ok());
    });
    loop.Start();
    loop.loop().Invoke([&] {
      server = std::make_unique<Http2Server>(&loop.loop(), Http2ServerOptions{},
                                             router.AsHttp2Handler());
      if (!server->ListenUnix(UnixListenerOptions{.path = path}).ok()) std::abort();
    });
  }
  ~EchoServer() {
    loop.loop().Invoke([&] { server.reset(); });
    loop.Stop();
  }
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end());
  return v[k];
}

void BM_GrpcUnaryUnixSocket(benchmark::State& state) {
  const int in_flight = static_cast<int>(state.range(0));
  EchoServer server;
  LoopThread client_loop;
  client_loop.Start();
  std::unique_ptr<GrpcChannel> channel;
  client_loop.loop().Invoke([&] {
    channel = std::make_unique<GrpcChannel>(&client_loop.loop(), Endpoint::Unix(server.path));
  });
  const std::string payload(100, 'p');
  std::vector<double> latencies_us;
  latencies_us.reserve(1 << 20);
  std::mutex mu;
  std::condition_variable cv;
  int64_t failures = 0;

  for (auto _ : state) {
    int remaining = in_flight;
    client_loop.loop().Post([&] {
      for (int i = 0; i < in_flight; ++i) {
        auto start = Clock::now();
        channel->CallUnary("/bench.Echo/Say", payload, {}, [&, start](Result<std::string> r) {
          double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
          std::lock_guard lock(mu);
          if (!r.ok() || r->size() != payload.size()) ++failures;
          latencies_us.push_back(us);
          if (--remaining == 0) cv.notify_one();
        });
      }
    });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return remaining == 0; });
  }
  client_loop.loop().Invoke([&] { channel.reset(); });
  client_loop.Stop();

  state.counters["calls_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * in_flight), benchmark::Counter::kIsRate);
  state.counters["p50_us"] = Percentile(latencies_us, 0.50);
  state.counters["p99_us"] = Percentile(latencies_us, 0.99);
  state.counters["failures"] = static_cast<double>(failures);
}
BENCHMARK(BM_GrpcUnaryUnixSocket)->Arg(1)->Arg(32)->UseRealTime()->MinTime(2.0);

// h2load's own measurement of a Sigil HTTP/2 server over TLS; one iteration, counters from
// h2load's summary line ("finished in 1.23s, 81234.50 req/s, …").
void BM_Http2TlsH2load(benchmark::State& state) {
  const int streams = static_cast<int>(state.range(0));
  sigil::testing::TestCa ca("bench.example");
  auto svid = ca.IssueSvid("spiffe://bench.example/server");
  auto creds = TlsCredentials::FromPem(svid.CertPem(), svid.KeyPem());
  auto tls = TlsContext::CreateServer(TlsOptions{.credentials = *creds});
  if (!tls.ok()) {
    state.SkipWithError(tls.status().ToString().c_str());
    return;
  }
  LoopThread loop;
  loop.Start();
  std::unique_ptr<Http2Server> server;
  int port = loop.loop().Invoke([&] {
    server = std::make_unique<Http2Server>(&loop.loop(), Http2ServerOptions{},
                                           [](std::shared_ptr<Http2ServerStream> s) {
                                             s->Respond(200, {{"content-type", "text/plain"}});
                                             s->Write("ok\n");
                                             s->End();
                                           });
    if (!server->ListenTcp(TcpListenerOptions{}, *tls).ok()) std::abort();
    return server->tcp_port();
  });
  double rps = 0;
  std::string error;
  for (auto _ : state) {
    auto out = sigil::testing::RunProcess(
        {"h2load", "-n", std::to_string(std::min(200000, 20000 * streams)), "-c", "4", "-m", std::to_string(streams), "-t", "1",
         "https://127.0.0.1:" + std::to_string(port) + "/"},
        {}, std::chrono::seconds(120));
    if (!out.ok() || out->exit_code != 0) {
      error = out.ok() ? out->err : out.status().ToString();
      continue;
    }
    // "finished in 1.23s, 81234.50 req/s, …" and "requests: … 0 failed, …"
    size_t at = out->out.find(" req/s");
    size_t comma = out->out.rfind(", ", at);
    if (at != std::string::npos && comma != std::string::npos) {
      rps = std::strtod(out->out.c_str() + comma + 2, nullptr);
    }
    if (out->out.find(" 0 failed") == std::string::npos) error = "h2load: failed requests";
  }
  loop.loop().Invoke([&] { server.reset(); });
  loop.Stop();
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  state.counters["requests_per_s"] = rps;
}
BENCHMARK(BM_Http2TlsH2load)->Arg(1)->Arg(16)->Iterations(1)->UseRealTime();

}  // namespace
}  // namespace sigil::transport

BENCHMARK_MAIN();
