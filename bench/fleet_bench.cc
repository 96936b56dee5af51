// Scenario 7: a fleet on one serverd. This process plays N agents against a real `serverd run`
// process: each attests with a join token, holds one mTLS connection, keeps its entries current
// with the long-poll sync agentd runs (27–30 s waits), and renews its workloads' X509-SVIDs at
// half-life through SignCsrBatch, as agentd does. W workload entries are spread over the agents.
// serverd's CPU and RSS are read from /proc for its own process, so the simulator's cost (it
// shares this machine) stays out of serverd's figures; the simulator's CPU is reported apart.
//
//   build-bench/bench/fleet_bench [--quick] [--agents=N] [--workloads=W] [--steady-seconds=S]
//
// Phases, each with serverd's CPU over it:
//   attestation  every agent attests (32 at a time);
//   first_sync   from the first sync until every agent holds every SVID of its entries;
//   steady       the X.509 TTL short enough that every SVID is renewed several times: how late a
//                long poll is answered after its wait ends (sync p50/p99), SignCsrBatch latency,
//                both for calls sent in this phase;
//   storm        1% of the entries updated in one admin call: until every agent holding one of
//                them has the change.
// Every agent-side failure is counted in `errors`; the budget is none.
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "agentd/sync/entry_sync.h"
#include "agentd/sync/server_client.h"
#include "bench/bench_report.h"
#include "bench/bench_server.h"
#include "core/backoff.h"
#include "core/csr.h"
#include "core/log.h"
#include "core/trust_bundle.h"
#include "hw/soft_key_store.h"
#include "serverd/admin/admin_server.h"
#include "serverd/admin/entry_json.h"
#include "tests/support/serverd_process.h"
#include "tests/support/softhsm.h"

namespace sigil::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Options {
  bool quick = false;
  int agents = 5000;
  int workloads = 10000;
  int steady_seconds = 90;
};

Options ParseOptions(int argc, char** argv) {
  Options options;
  options.quick = HasFlag(argc, argv, "--quick");
  if (options.quick) {
    options.agents = 500;
    options.workloads = 1000;
    // Long enough for a long poll sent in the phase (27–30 s) to be answered in it.
    options.steady_seconds = 70;
  }
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto number = [&](const std::string& flag) { return std::atoi(arg.substr(flag.size()).c_str()); };
    if (arg.starts_with("--agents=")) options.agents = number("--agents=");
    if (arg.starts_with("--workloads=")) options.workloads = number("--workloads=");
    if (arg.starts_with("--steady-seconds=")) options.steady_seconds = number("--steady-seconds=");
  }
  return options;
}

// One simulated agent. Everything but `client` and `id` belongs to its loop's thread.
struct SimAgent {
  std::unique_ptr<agentd::ServerClient> client;
  transport::EventLoop* loop = nullptr;
  std::string id;
  int64_t revision = 0;
  std::map<std::string, int64_t> entries;  // id -> revision held
  Clock::time_point renew_at = Clock::time_point::max();
  Clock::time_point retry_at = Clock::time_point::max();
  bool signing = false;
  bool has_svids = false;
};

// What the agents saw, from every loop.
struct Observations {
  std::mutex mu;
  std::condition_variable changed;
  // Calls sent since the steady phase began. A long poll sent while the first sync's burst was
  // still queued at serverd's loop carries that phase's queueing; it is not the steady state's.
  Clock::time_point steady_began = Clock::time_point::max();
  std::vector<double> late_ms;     // long polls: answered this long after their wait ended
  std::vector<double> first_round_late_ms;  // and those sent before the steady phase
  std::vector<double> signing_ms;  // SignCsrBatch round trips
  uint64_t errors = 0;
  std::string first_error;
  // The same over the whole run, as (seconds since it began, value), for the plot over time.
  Clock::time_point began = Clock::now();
  std::vector<std::pair<double, double>> late_over_time;
  std::vector<std::pair<double, double>> signing_over_time;
  std::vector<std::pair<double, double>> errors_over_time;  // (when, 1)
  int agents_with_svids = 0;
  // The storm: the entries it updates, and the agents yet to see theirs change.
  std::set<std::string> storm_entries;
  std::set<std::string> storm_waiting;
  Clock::time_point storm_last_arrival;

  double SinceBegan(Clock::time_point when) const { return std::chrono::duration<double>(when - began).count(); }

  void Error(const Status& status) {
    std::lock_guard lock(mu);
    if (errors++ == 0) first_error = status.ToString();
    errors_over_time.emplace_back(SinceBegan(Clock::now()), 1);
  }
};

class Fleet {
 public:
  Fleet(const Options& options, int server_port, X509Bundle bundle, std::chrono::seconds ttl)
      : options_(options), port_(server_port), bundle_(std::move(bundle)), ttl_(ttl) {
    for (auto& loop : loops_) loop.Start();
  }
  ~Fleet() {
    // Each client's connections live on its loop: closed there before the loops stop.
    for (auto& agent : agents_) agent->client.reset();
    for (auto& loop : loops_) loop.Stop();
  }

  // Attests one agent per token, `parallel` at a time.
  Status Attest(const std::vector<std::string>& tokens, int parallel) {
    agents_.resize(tokens.size());
    std::atomic<size_t> next{0};
    std::atomic<int> failures{0};
    std::vector<std::jthread> pool;
    for (int t = 0; t < parallel; ++t) {
      pool.emplace_back([&] {
        for (size_t i = next++; i < tokens.size(); i = next++) {
          if (!AttestOne(i, tokens[i]).ok()) ++failures;
        }
      });
    }
    pool.clear();
    if (failures > 0) return InternalError(std::to_string(failures.load()) + " agents failed to attest");
    return Status::Ok();
  }

  // Every agent's first sync, then its long polls and renewals, until Stop.
  void Run() {
    for (auto& agent : agents_) {
      SimAgent* a = agent.get();
      a->loop->Post([this, a] { Sync(*a); });
    }
    for (auto& loop : loops_) {
      loop.loop().Post([this, loop = &loop.loop()] { StartTicks(loop); });
    }
  }

  void Stop() {
    stopping_ = true;
    for (auto& loop : loops_) {
      loop.loop().Invoke([&] {
        for (uv_timer_t* timer : timers_) {
          if (timer->loop == loop.loop().uv()) {
            uv_close(reinterpret_cast<uv_handle_t*>(timer),
                     [](uv_handle_t* handle) { delete reinterpret_cast<uv_timer_t*>(handle); });
          }
        }
      });
    }
  }

  Observations& seen() { return seen_; }
  size_t size() const { return agents_.size(); }

 private:
  Status AttestOne(size_t index, const std::string& token) {
    auto agent = std::make_unique<SimAgent>();
    agent->loop = &loops_[index % loops_.size()].loop();
    agentd::ServerClient::Options client;
    client.endpoint = {.host = "127.0.0.1", .port = port_};
    client.trust_domain = bundle_.trust_domain;
    client.timeout = std::chrono::seconds(60);
    agent->client = std::make_unique<agentd::ServerClient>(client, agent->loop);
    SIGIL_RETURN_IF_ERROR(agent->client->SetBundle(bundle_));
    SIGIL_ASSIGN_OR_RETURN(agent->id, AttestWithJoinToken(*agent->client, token));
    agents_[index] = std::move(agent);
    return Status::Ok();
  }

  // Loop thread of `agent`.
  void Sync(SimAgent& agent) {
    if (stopping_) return;
    const auto wait = agent.revision == 0 ? std::chrono::milliseconds(0) : agentd::LongPollWait();
    const auto sent = Clock::now();
    agent.client->SyncEntriesAsync(agent.revision, wait, [this, &agent, sent, wait](Result<agentd::EntrySyncAnswer> answer) {
      if (stopping_) return;
      if (!answer.ok()) {
        seen_.Error(answer.status());
        // agentd's first retry: a second, less its jitter.
        agent.retry_at = Clock::now() + std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::seconds(1) * BackoffJitter());
        return;
      }
      const auto now = Clock::now();
      bool news = answer->full;
      std::vector<std::string> arrived_storm;
      for (const RegistrationEntry& entry : answer->entries) {
        auto held = agent.entries.find(entry.id);
        if (held == agent.entries.end() || held->second != entry.revision) news = true;
        agent.entries[entry.id] = entry.revision;
        arrived_storm.push_back(entry.id);
      }
      for (const std::string& removed : answer->removed_entry_ids) agent.entries.erase(removed);
      agent.revision = answer->revision;
      if (!news && wait.count() > 0 && now - sent >= wait) {
        std::lock_guard lock(seen_.mu);
        const double late = std::chrono::duration<double, std::milli>(now - sent - wait).count();
        (sent >= seen_.steady_began ? seen_.late_ms : seen_.first_round_late_ms).push_back(late);
        seen_.late_over_time.emplace_back(seen_.SinceBegan(now), late);
      }
      NoteStorm(agent, arrived_storm, now);
      if (news) Sign(agent);
      Sync(agent);
    });
  }

  void NoteStorm(SimAgent& agent, const std::vector<std::string>& arrived, Clock::time_point now) {
    std::lock_guard lock(seen_.mu);
    if (seen_.storm_waiting.empty() || !seen_.storm_waiting.contains(agent.id)) return;
    // After the first sync an entry arrives only when it changed, so one of the storm's arriving
    // is the storm's change.
    for (const std::string& id : arrived) {
      if (seen_.storm_entries.contains(id)) {
        seen_.storm_waiting.erase(agent.id);
        seen_.storm_last_arrival = now;
        seen_.changed.notify_all();
        return;
      }
    }
  }

  // Renews every SVID of `agent`: one batch, one CSR per entry (its key made once per agent,
  // as a rotation's cost on serverd does not depend on it).
  void Sign(SimAgent& agent) {
    if (agent.signing || agent.entries.empty() || stopping_) return;
    agent.signing = true;
    std::vector<agentd::CsrRequestItem> items;
    for (const auto& [id, revision] : agent.entries) items.push_back({id, Csr()});
    const auto sent = Clock::now();
    agent.client->SignCsrBatchAsync(items, [this, &agent, sent](Result<std::vector<agentd::CsrAnswer>> answers) {
      agent.signing = false;
      const auto now = Clock::now();
      agent.renew_at = now + ttl_ / 2;
      if (!answers.ok()) return seen_.Error(answers.status());
      for (const auto& answer : *answers) {
        if (!answer.status.ok()) seen_.Error(answer.status);
      }
      std::lock_guard lock(seen_.mu);
      const double took = std::chrono::duration<double, std::milli>(now - sent).count();
      if (sent >= seen_.steady_began) seen_.signing_ms.push_back(took);
      seen_.signing_over_time.emplace_back(seen_.SinceBegan(now), took);
      if (!agent.has_svids) {
        agent.has_svids = true;
        ++seen_.agents_with_svids;
        seen_.changed.notify_all();
      }
    });
  }

  const Bytes& Csr() {
    // One CSR for every item: serverd checks and signs each as it would any other.
    static const Bytes csr = [] {
      auto key = hw::GenerateSoftKey(KeyType::kEcP256);
      return key.ok() ? MakeCsr(key->get()).value_or(Bytes()) : Bytes();
    }();
    return csr;
  }

  // Loop thread: every 200 ms, the agents of this loop due a renewal or a retry.
  void StartTicks(transport::EventLoop* loop) {
    auto* timer = new uv_timer_t;
    uv_timer_init(loop->uv(), timer);
    timer->data = this;
    timers_.push_back(timer);
    tick_loops_[timer] = loop;
    uv_timer_start(timer, [](uv_timer_t* t) {
      auto* self = static_cast<Fleet*>(t->data);
      self->Tick(self->tick_loops_[t]);
    }, 200, 200);
  }

  void Tick(transport::EventLoop* loop) {
    const auto now = Clock::now();
    for (auto& agent : agents_) {
      if (agent->loop != loop) continue;
      if (agent->retry_at <= now) {
        agent->retry_at = Clock::time_point::max();
        Sync(*agent);
      }
      if (agent->renew_at <= now) Sign(*agent);
    }
  }

  const Options options_;
  const int port_;
  const X509Bundle bundle_;
  const std::chrono::seconds ttl_;
  std::array<transport::LoopThread, 2> loops_;
  std::vector<std::unique_ptr<SimAgent>> agents_;
  std::vector<uv_timer_t*> timers_;                       // set up on their loops, one each
  std::map<uv_timer_t*, transport::EventLoop*> tick_loops_;
  std::atomic<bool> stopping_{false};
  Observations seen_;
};

// How many descriptors process `pid` holds open, or -1 when /proc cannot tell.
long OpenFiles(pid_t pid) {
  std::error_code error;
  std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", error);
  if (error) return -1;
  long count = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(error)) {
    if (error) return -1;
    ++count;
  }
  return count;
}

// serverd's CPU seconds, its largest RSS and the most descriptors it held, sampled every
// 250 ms on a thread of its own; each second's CPU (in cores) and RSS are kept for the plot
// over time.
class ServerWatch {
 public:
  ServerWatch(pid_t pid, Clock::time_point began) : pid_(pid), began_(began), thread_([this](std::stop_token stop) {
    double cpu_before = CpuSeconds(pid_);
    auto before = Clock::now();
    for (int tick = 1; !stop.stop_requested(); ++tick) {
      const long kib = ResidentKiB(pid_);
      if (kib > max_kib_) max_kib_ = kib;
      const long fds = OpenFiles(pid_);
      if (fds > max_fds_) max_fds_ = fds;
      if (tick % 4 == 0) {
        const auto now = Clock::now();
        const double cpu_now = CpuSeconds(pid_);
        const double since = std::chrono::duration<double>(now - began_).count();
        std::lock_guard lock(mu_);
        cpu_over_time_.emplace_back(since, (cpu_now - cpu_before) / std::chrono::duration<double>(now - before).count());
        rss_over_time_.emplace_back(since, static_cast<double>(kib) / 1024);
        cpu_before = cpu_now;
        before = now;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }) {}
  double cpu() const { return CpuSeconds(pid_); }
  long max_kib() const { return max_kib_; }
  long max_fds() const { return max_fds_; }
  void AddSeries(Report& report) {
    std::lock_guard lock(mu_);
    report.Series("serverd_cpu", cpu_over_time_, "cores");
    report.Series("serverd_rss", rss_over_time_, "MiB");
  }

 private:
  pid_t pid_;
  Clock::time_point began_;
  std::atomic<long> max_kib_{0};
  std::atomic<long> max_fds_{0};
  std::mutex mu_;
  std::vector<std::pair<double, double>> cpu_over_time_;
  std::vector<std::pair<double, double>> rss_over_time_;
  std::jthread thread_;  // last: it starts once the rest is set
};

// Each second's p99 of `samples` (seconds since the run began, value): a plot over time of
// tens of thousands of calls stays readable.
std::vector<std::pair<double, double>> PerSecondP99(const std::vector<std::pair<double, double>>& samples) {
  std::map<int64_t, std::vector<double>> by_second;
  for (const auto& [when, value] : samples) by_second[static_cast<int64_t>(when)].push_back(value);
  std::vector<std::pair<double, double>> out;
  for (auto& [second, values] : by_second) {
    std::sort(values.begin(), values.end());
    out.emplace_back(static_cast<double>(second), Percentile(values, 0.99));
  }
  return out;
}

// How many of `events` (seconds since the run began, 1) fell in each of the run's `seconds`.
std::vector<std::pair<double, double>> PerSecondCount(const std::vector<std::pair<double, double>>& events,
                                                      double seconds) {
  std::vector<std::pair<double, double>> out;
  for (int64_t second = 0; second <= static_cast<int64_t>(seconds); ++second) out.emplace_back(second, 0);
  for (const auto& [when, count] : events) {
    const auto second = static_cast<size_t>(std::max(0.0, when));
    if (second < out.size()) out[second].second += count;
  }
  return out;
}

Status Run(const Options& options, Report& report) {
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
  if (files.rlim_cur < static_cast<rlim_t>(options.agents) * 2 + 256) {
    return FailedPreconditionError("the open-file limit (" + std::to_string(files.rlim_cur) + ") is too low for " +
                                   std::to_string(options.agents) + " agents");
  }
  // serverd runs as its own process; it finds the binary as the tests do.
  ::setenv("SIGIL_SERVERD", SIGIL_SERVERD_BINARY, 0);
  SIGIL_ASSIGN_OR_RETURN(auto hsm, testing::SoftHsm::Create());
  testing::ServerdOptions server_options;
  // The agents all come from 127.0.0.1; a real fleet spreads over as many addresses. Each
  // entry's TTL sets the renewals; the rest are serverd's defaults.
  server_options.top_level_yaml = "agent_api_limits:\n  max_connections: 100000\n"
                                  "  max_connections_per_source: 100000\n"
                                  "  attestations_per_second_per_ip: 1000000\n  attestation_burst_per_ip: 1000000\n"
                                  "  max_source_request_bytes: 1073741824\n  max_source_unsent_bytes: 1073741824\n";
  SIGIL_ASSIGN_OR_RETURN(auto server, testing::ServerdProcess::Create(*hsm, "fleet", server_options));
  SIGIL_RETURN_IF_ERROR(server->Start());
  serverd::SocketAdminClient admin(server->socket_path().string());
  SIGIL_ASSIGN_OR_RETURN(TrustDomain td, TrustDomain::Parse("example.org"));
  SIGIL_ASSIGN_OR_RETURN(X509Bundle bundle, BundleThrough(admin, td));
  const long idle_kib = ResidentKiB(server->pid());  // before any agent connects
  const Clock::time_point run_began = Clock::now();
  ServerWatch watch(server->pid(), run_began);

  // Tokens, then the entries under the agents they will name, before the clock starts.
  std::vector<std::string> tokens;
  for (int i = 0; i < options.agents; ++i) {
    SIGIL_ASSIGN_OR_RETURN(std::string token, NewJoinTokenThrough(admin));
    tokens.push_back(std::move(token));
  }
  const std::chrono::seconds ttl(options.quick ? 16 : 40);
  std::vector<RegistrationEntry> entries;
  for (int w = 0; w < options.workloads; ++w) {
    RegistrationEntry entry = WorkloadEntry(td, "fleet/w" + std::to_string(w),
                                            "spiffe://example.org/spire/agent/join_token/" +
                                                tokens[static_cast<size_t>(w % options.agents)]);
    entry.x509_svid_ttl = ttl;
    entries.push_back(std::move(entry));
  }
  SIGIL_ASSIGN_OR_RETURN(std::vector<std::string> ids, CreateEntriesThrough(admin, entries));
  for (size_t i = 0; i < ids.size(); ++i) entries[i].id = ids[i];
  std::fprintf(stderr, "fleet: %d agents, %d workloads, load %s\n", options.agents, options.workloads,
               LoadAverage().c_str());

  Fleet fleet(options, server->agent_port(), bundle, ttl);
  fleet.seen().began = run_began;
  const double self_cpu_start = CpuSeconds();
  double cpu = watch.cpu();
  auto phase = [&](const std::string& name, double seconds) {
    const double used = watch.cpu() - cpu;
    cpu = watch.cpu();
    report.Metric(name + "/seconds", seconds, "s", false);
    report.Detail(name + "/serverd_cpu_seconds", used, "s");
    std::fprintf(stderr, "fleet: %s %.2f s, serverd CPU %.2f s\n", name.c_str(), seconds, used);
  };

  auto started = Clock::now();
  SIGIL_RETURN_IF_ERROR(fleet.Attest(tokens, 32));
  phase("attestation", std::chrono::duration<double>(Clock::now() - started).count());

  started = Clock::now();
  fleet.Run();
  {
    std::unique_lock lock(fleet.seen().mu);
    const int with_entries = std::min(options.agents, options.workloads);
    if (!fleet.seen().changed.wait_for(lock, std::chrono::seconds(120),
                                       [&] { return fleet.seen().agents_with_svids >= with_entries; })) {
      return DeadlineExceededError("only " + std::to_string(fleet.seen().agents_with_svids) + " of " +
                                   std::to_string(with_entries) + " agents got their SVIDs");
    }
  }
  phase("first_sync", std::chrono::duration<double>(Clock::now() - started).count());

  // Steady state: renewals at half of the TTL, several rounds of them.
  {
    std::lock_guard lock(fleet.seen().mu);
    fleet.seen().steady_began = Clock::now();
  }
  const double steady_cpu_start = watch.cpu();
  std::this_thread::sleep_for(std::chrono::seconds(options.steady_seconds));
  const double steady_cpu = watch.cpu() - steady_cpu_start;
  {
    std::lock_guard lock(fleet.seen().mu);
    auto& late = fleet.seen().late_ms;
    auto& signing = fleet.seen().signing_ms;
    std::sort(late.begin(), late.end());
    std::sort(signing.begin(), signing.end());
    report.Metric("steady/sync_late_p50_ms", Percentile(late, 0.5), "ms", false);
    report.Metric("steady/sync_late_p99_ms", Percentile(late, 0.99), "ms", false);
    report.Metric("steady/signing_p50_ms", Percentile(signing, 0.5), "ms", false);
    report.Metric("steady/signing_p99_ms", Percentile(signing, 0.99), "ms", false);
    report.Detail("steady/long_polls_answered", static_cast<double>(late.size()), "");
    auto& first_round = fleet.seen().first_round_late_ms;
    std::sort(first_round.begin(), first_round.end());
    report.Detail("first_sync/long_poll_late_p99_ms", Percentile(first_round, 0.99), "ms");
    report.Detail("steady/signing_batches", static_cast<double>(signing.size()), "");
    report.Distribution("steady/signing", signing, "ms");
  }
  report.Detail("steady/serverd_cpu_share", steady_cpu / options.steady_seconds, "cores");
  cpu = watch.cpu();

  // The storm: 1% of the entries, every hundredth, updated in one admin call.
  std::vector<RegistrationEntry> stormed;
  for (size_t i = 0; i < entries.size(); i += 100) {
    RegistrationEntry entry = entries[i];
    entry.x509_svid_ttl = ttl + std::chrono::seconds(1);
    stormed.push_back(std::move(entry));
  }
  json batch = json::array();
  for (const auto& entry : stormed) batch.push_back(serverd::EntryToJson(entry));
  started = Clock::now();
  {
    std::lock_guard lock(fleet.seen().mu);
    for (const auto& entry : stormed) {
      fleet.seen().storm_waiting.insert(entry.parent_id);
      fleet.seen().storm_entries.insert(entry.id);
    }
  }
  SIGIL_ASSIGN_OR_RETURN(json updated, admin.Call("/v1/entry/BatchUpdateEntry", json{{"entries", batch}}));
  for (const json& result : updated["results"]) {
    if (!result.contains("entry")) return InternalError("storm update refused: " + result.dump());
  }
  {
    std::unique_lock lock(fleet.seen().mu);
    if (!fleet.seen().changed.wait_for(lock, std::chrono::seconds(60),
                                       [&] { return fleet.seen().storm_waiting.empty(); })) {
      return DeadlineExceededError(std::to_string(fleet.seen().storm_waiting.size()) +
                                   " agents never saw the storm's change");
    }
    phase("storm", std::chrono::duration<double>(fleet.seen().storm_last_arrival - started).count());
  }
  fleet.Stop();

  report.Metric("serverd_rss_max_mib", static_cast<double>(watch.max_kib()) / 1024, "MiB", false);
  report.Detail("serverd_rss_per_agent_kib", static_cast<double>(watch.max_kib() - idle_kib) / options.agents, "KiB");
  report.Detail("serverd_open_files_max", static_cast<double>(watch.max_fds()), "");
  report.Detail("simulator_cpu_seconds", CpuSeconds() - self_cpu_start, "s");
  watch.AddSeries(report);
  std::lock_guard lock(fleet.seen().mu);
  report.Series("sync_late_p99", PerSecondP99(fleet.seen().late_over_time), "ms");
  report.Series("signing_p99", PerSecondP99(fleet.seen().signing_over_time), "ms");
  report.Series("errors", PerSecondCount(fleet.seen().errors_over_time, fleet.seen().SinceBegan(Clock::now())),
                "per second");
  report.Metric("errors", static_cast<double>(fleet.seen().errors), "", false);
  if (fleet.seen().errors > 0) std::fprintf(stderr, "fleet: first error: %s\n", fleet.seen().first_error.c_str());
  return Status::Ok();
}

}  // namespace
}  // namespace sigil::bench

int main(int argc, char** argv) {
  using namespace sigil;
  const bench::Options options = bench::ParseOptions(argc, argv);
  ConfigureLogging(LogLevel::kWarn, LogFormat::kText);
  bench::Report report("fleet", options.quick);
  report.Detail("agents", options.agents, "");
  report.Detail("workloads", options.workloads, "");
  const Status ran = bench::Run(options, report);
  if (!ran.ok()) report.Error(ran.ToString());
  report.Print();
  return ran.ok() ? 0 : 1;
}
