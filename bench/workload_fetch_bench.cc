// Scenario 1: the Workload API's FetchX509SVID answered from agentd's cache — the time from
// the call to its first message, on a warm connection and on a new one, with 1 and 32 clients
// at once. Ceiling: the same client calling a trivial method (grpc.health.v1.Health/Check) on
// the same socket and transport, measured in the same run.
//
//   build-bench/bench/workload_fetch_bench [--quick] [--phase=warm/clients32]
//
// --phase runs that phase alone, to profile agentd under that load alone.
//
// The clients are Sigil's gRPC client on one loop thread of this process (the workload);
// agentd is a real process attested to an in-process serverd.
#include <cstdio>
#include <future>
#include <string_view>

#include "bench/agentd_env.h"
#include "bench/bench_report.h"
#include "transport/event_loop.h"
#include "transport/grpc_client.h"

namespace sigil::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kFetchX509Svid[] = "/SpiffeWorkloadAPI/FetchX509SVID";
constexpr char kHealthCheck[] = "/grpc.health.v1.Health/Check";

struct Config {
  bool new_connection;
  int clients;
  int samples;
};

// Runs `samples` calls, `clients` at a time, on `loop`; returns each call's latency in µs.
Result<std::vector<double>> Measure(transport::EventLoop& loop, const transport::Endpoint& endpoint,
                                    const std::string& method, bool streaming, const Config& config) {
  struct State {
    Config config;
    std::vector<std::unique_ptr<transport::GrpcChannel>> channels;
    std::vector<double> latencies;
    int started = 0;   // samples
    int finished = 0;  // samples
    int in_flight = 0;  // calls, warm-up calls included: the phase ends when none is left
    bool signalled = false;
    Status failure;
    std::promise<void> done;
    std::function<void(int)> start_one;  // holds the State raw; each call's callbacks own it
    std::weak_ptr<State> self;
  };
  auto state = std::make_shared<State>();
  state->self = state;
  state->config = config;
  state->latencies.reserve(static_cast<size_t>(config.samples));
  transport::GrpcCallOptions options;
  options.metadata = {{"workload.spiffe.io", "true"}};
  options.timeout = std::chrono::seconds(10);

  state->start_one = [&loop, &endpoint, method, streaming, options, raw = state.get()](int slot) {
    std::shared_ptr<State> state = raw->self.lock();
    const Config& config = state->config;
    if (state->started == config.samples || !state->failure.ok()) return;
    ++state->started;
    // A warm connection serves the whole phase after one unmeasured call: cancelling each
    // stream after its first message is the fetch's normal use, which the server's reset
    // limits never count against it (transport/http2_server.h, premature resets).
    const auto index = static_cast<size_t>(slot);
    const bool replace = config.new_connection || !state->channels[index];
    const bool warm_up = replace && !config.new_connection;
    if (warm_up) --state->started;  // the warm-up call is not a sample
    if (replace) {
      // The old channel may be the caller of this very callback: let it go after the callback.
      std::shared_ptr<transport::GrpcChannel> old = std::move(state->channels[static_cast<size_t>(slot)]);
      loop.Post([old] {});
      state->channels[static_cast<size_t>(slot)] = std::make_unique<transport::GrpcChannel>(&loop, endpoint);
    }
    const auto t0 = Clock::now();
    ++state->in_flight;
    auto record = [state, t0, warm_up](const Status& status) {
      --state->in_flight;
      if (!status.ok() && state->failure.ok()) state->failure = status;
      if (!warm_up) {
        state->latencies.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        ++state->finished;
      }
      // A warm-up call may still be on its way when the last sample is in; the channels go only
      // after it, or it would end as cancelled.
      const bool over = state->finished == state->config.samples || !state->failure.ok();
      if (over && state->in_flight == 0 && !state->signalled) {
        state->signalled = true;
        state->done.set_value();
      }
    };
    auto& channel = *state->channels[static_cast<size_t>(slot)];
    if (streaming) {
      auto call = std::make_shared<std::shared_ptr<transport::GrpcClientCall>>();
      auto got_first = std::make_shared<bool>(false);
      *call = channel.CallServerStreaming(
          method, "", options,
          [call, got_first, record](std::string message) {
            if (*got_first) return;
            *got_first = true;
            record(message.empty() ? InternalError("empty X509SVIDResponse") : Status::Ok());
            (*call)->Cancel();
          },
          [slot, got_first, record, state](Status status) {
            if (!*got_first) record(status.ok() ? InternalError("the stream ended without a message") : status);
            state->start_one(slot);
          });
    } else {
      channel.CallUnary(method, "", options, [slot, record, state](Result<std::string> response) {
        record(response.status());
        state->start_one(slot);
      });
    }
  };
  auto finished = state->done.get_future();
  loop.Post([state] {
    state->channels.resize(static_cast<size_t>(state->config.clients));
    for (int slot = 0; slot < state->config.clients; ++slot) state->start_one(slot);
  });
  if (finished.wait_for(std::chrono::minutes(5)) != std::future_status::ready) {
    return DeadlineExceededError("the calls did not finish within 5 minutes");
  }
  std::vector<double> latencies;
  loop.Invoke([&] {
    latencies = std::move(state->latencies);
    state->channels.clear();
    state->start_one = [](int) {};
  });
  if (!state->failure.ok()) {
    return state->failure.AddContext(method + " after " + std::to_string(state->finished) + " calls");
  }
  return latencies;
}

// The CPU time of agentd and of this process over spans of calls, per call.
class CpuPerCall {
 public:
  struct Span {
    explicit Span(pid_t agent) : agent(agent), agent_start(CpuSeconds(agent)), client_start(CpuSeconds()) {}
    pid_t agent;
    double agent_start;
    double client_start;
  };
  void Add(const Span& span, size_t calls) {
    agentd_seconds_ += CpuSeconds(span.agent) - span.agent_start;
    client_seconds_ += CpuSeconds() - span.client_start;
    calls_ += calls;
  }
  double agentd_us() const { return calls_ == 0 ? 0 : agentd_seconds_ * 1e6 / static_cast<double>(calls_); }
  double client_us() const { return calls_ == 0 ? 0 : client_seconds_ * 1e6 / static_cast<double>(calls_); }

 private:
  double agentd_seconds_ = 0;
  double client_seconds_ = 0;
  size_t calls_ = 0;
};

Status Run(bool quick, const std::string& only_phase, Report& report) {
  SIGIL_ASSIGN_OR_RETURN(auto env, AgentdEnv::Start());
  SIGIL_RETURN_IF_ERROR(env->server().CreateEntries({env->Entry("workload/fetch-bench")}).status());
  const transport::Endpoint endpoint = transport::Endpoint::Unix(env->socket_path());
  transport::LoopThread loop;
  loop.Start();
  // Wait until the agent has the SVID: the first answer then comes from the cache.
  bool cached = testing::WaitUntil(
      [&] { return Measure(loop.loop(), endpoint, kFetchX509Svid, true, {false, 1, 1}).ok(); },
      std::chrono::seconds(20));
  if (!cached) return DeadlineExceededError("agentd never served the workload's SVID");

  const int warm_samples = quick ? 3000 : 30000;
  const int new_samples = quick ? 500 : 4000;
  const std::vector<Config> configs = {
      {false, 1, warm_samples}, {false, 32, warm_samples}, {true, 1, new_samples}, {true, 32, new_samples}};
  for (const Config& config : configs) {
    const std::string name = std::string(config.new_connection ? "new" : "warm") + "/clients" +
                             std::to_string(config.clients);
    if (!only_phase.empty() && name != only_phase) continue;
    std::fprintf(stderr, "workload_fetch: %s, load %s\n", name.c_str(), LoadAverage().c_str());
    // Interleaved halves, so a change in the machine's load hits both sides alike.
    std::vector<double> fetch;
    std::vector<double> health;
    Config half = config;
    half.samples = config.samples / 2;
    // CPU time per call of agentd and of this process (the clients' loop; the in-process serverd
    // is idle here), each side apart: what a fetch costs beyond a health check, which the
    // latencies, queued behind each other on two cores, show only mixed with the machine's load.
    CpuPerCall fetch_cpu;
    CpuPerCall health_cpu;
    for (int round = 0; round < 2; ++round) {
      CpuPerCall::Span span(env->agent_pid());
      SIGIL_ASSIGN_OR_RETURN(auto f, Measure(loop.loop(), endpoint, kFetchX509Svid, true, half));
      fetch_cpu.Add(span, f.size());
      span = CpuPerCall::Span(env->agent_pid());
      SIGIL_ASSIGN_OR_RETURN(auto h, Measure(loop.loop(), endpoint, kHealthCheck, false, half));
      health_cpu.Add(span, h.size());
      fetch.insert(fetch.end(), f.begin(), f.end());
      health.insert(health.end(), h.begin(), h.end());
    }
    report.Detail(name + "/agentd_cpu_us_per_fetch", fetch_cpu.agentd_us(), "us");
    report.Detail(name + "/agentd_cpu_us_per_health_check", health_cpu.agentd_us(), "us");
    report.Detail(name + "/client_cpu_us_per_fetch", fetch_cpu.client_us(), "us");
    report.Detail(name + "/client_cpu_us_per_health_check", health_cpu.client_us(), "us");
    std::sort(fetch.begin(), fetch.end());
    std::sort(health.begin(), health.end());
    for (const auto& [label, fraction] : {std::pair{"p50", 0.5}, std::pair{"p99", 0.99}, std::pair{"p999", 0.999}}) {
      const std::string metric = name + "/" + label + "_us";
      const double value = Percentile(fetch, fraction);
      const double ceiling = Percentile(health, fraction);
      if (std::string(label) == "p99") {
        report.MetricWithCeiling(metric, value, ceiling, "us");
      } else {
        report.Detail(metric, value, "us");
        report.Detail(name + "/ceiling_" + label + "_us", ceiling, "us");
      }
    }
    report.Distribution(name + "/fetch_latency", fetch, "us");
    report.Distribution(name + "/ceiling_latency", health, "us");
  }
  report.Detail("agent_rss_kib", static_cast<double>(ResidentKiB(env->agent_pid())), "KiB");
  loop.Stop();
  return Status::Ok();
}

}  // namespace
}  // namespace sigil::bench

int main(int argc, char** argv) {
  const bool quick = sigil::bench::HasFlag(argc, argv, "--quick");
  std::string only_phase;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]).starts_with("--phase=")) only_phase = std::string(argv[i] + 8);
  }
  sigil::bench::Report report("workload_fetch", quick);
  if (sigil::Status status = sigil::bench::Run(quick, only_phase, report); !status.ok()) report.Error(status.ToString());
  report.Print();
  return 0;
}
