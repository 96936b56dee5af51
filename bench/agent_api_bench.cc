// Scenario 3: batched CSR signing over serverd's agent API, end to end (HTTP/2 + TLS on
// loopback, agentd's client, serverd in this process), for each key store and CA mode, against
// a ceiling measured in the same run: the key store's raw digest-sign rate plus one CSR
// verification per SVID, on as many threads as serverd has signing workers.
//
//   build-bench/bench/agent_api_bench [--quick] [--stores=soft,pkcs11,tpm]
//       [--modes=direct,delegated] [--batches=1,16,64] [--seconds=S] [--workers=N]
//
// Prints the JSON report of bench/bench_report.h. Client key generation is done before the
// clock starts; every SVID counted was checked to have come back signed.
#include <openssl/sha.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "bench/bench_report.h"
#include "bench/bench_server.h"
#include "bench/signing_load.h"
#include "core/csr.h"
#include "core/log.h"
#include "hw/soft_key_store.h"
#include "tests/support/process.h"
#include "tests/support/softhsm.h"
#include "tests/support/swtpm.h"

namespace sigil::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  bool quick = false;
  std::vector<std::string> stores = {"soft", "pkcs11", "tpm"};
  std::vector<std::string> modes = {"direct", "delegated"};
  std::vector<int> batches = {1, 16, 64};
  double seconds = 0;  // 0: the default for --quick or not
  int workers = 2;
};

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const std::string& flag) -> std::optional<std::string> {
      if (arg.rfind(flag + "=", 0) != 0) return std::nullopt;
      return arg.substr(flag.size() + 1);
    };
    if (arg == "--quick") {
      options.quick = true;
    } else if (auto stores = value("--stores")) {
      options.stores = SplitList(*stores);
    } else if (auto modes = value("--modes")) {
      options.modes = SplitList(*modes);
    } else if (auto batches = value("--batches")) {
      options.batches.clear();
      for (const auto& b : SplitList(*batches)) options.batches.push_back(std::atoi(b.c_str()));
    } else if (auto seconds = value("--seconds")) {
      options.seconds = std::atof(seconds->c_str());
    } else if (auto workers = value("--workers")) {
      options.workers = std::atoi(workers->c_str());
    } else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      std::exit(2);
    }
  }
  return options;
}

// Runs `operation` on `threads` threads until `duration` has passed; operations per second.
// Stops early (returning 0) when an operation fails.
template <typename Operation>
double RatePerSecond(int threads, Seconds duration, Operation operation) {
  std::atomic<uint64_t> done{0};
  std::atomic<bool> failed{false};
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(duration);
  std::vector<std::jthread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      uint64_t mine = 0;
      while (Clock::now() < deadline && !failed) {
        if (!operation()) {
          failed = true;
          break;
        }
        ++mine;
      }
      done += mine;
    });
  }
  pool.clear();
  if (failed) return 0;
  return static_cast<double>(done) / Seconds(Clock::now() - start).count();
}

struct Ceiling {
  double sign_per_s = 0;
  double verify_per_s = 0;
  // CPU time per operation: unlike the rates, hardly moved by other work on a shared machine,
  // so the pipeline's own CPU per SVID can be set against it.
  double sign_cpu_us = 0;
  double verify_cpu_us = 0;
  // One sign and one CSR verification per SVID, both on the same cores.
  double svids_per_s() const {
    if (sign_per_s <= 0 || verify_per_s <= 0) return 0;
    return 1.0 / (1.0 / sign_per_s + 1.0 / verify_per_s);
  }
};

// Signs with a fresh key in `store_config` (for delegated CA: a soft key in memory, as the
// delegated intermediate is) and verifies CSRs, each on `threads` threads. The store is closed
// before returning: swtpm serves one connection at a time and serverd needs it next.
Result<Ceiling> MeasureCeiling(const hw::KeyStoreConfig& store_config, int threads, Seconds duration,
                               const std::vector<Bytes>& csrs) {
  Ceiling ceiling;
  {
    SIGIL_ASSIGN_OR_RETURN(auto store, hw::OpenKeyStore(store_config));
    SIGIL_ASSIGN_OR_RETURN(auto signer, store->FindOrCreateKey("bench-ceiling", KeyType::kEcP256));
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const uint8_t*>("ceiling"), 7, digest);
    std::atomic<uint64_t> signs{0};
    const double cpu_before_signs = ProcessCpuSeconds();
    ceiling.sign_per_s = RatePerSecond(threads, duration, [&] {
      ++signs;
      return signer->SignDigest(SignatureScheme::kES256, digest).ok();
    });
    if (ceiling.sign_per_s == 0) return Status(Code::kInternal, "the ceiling's digest signing failed");
    ceiling.sign_cpu_us = (ProcessCpuSeconds() - cpu_before_signs) * 1e6 / static_cast<double>(signs);
  }
  std::atomic<uint64_t> verifies{0};
  const double cpu_before_verifies = ProcessCpuSeconds();
  ceiling.verify_per_s = RatePerSecond(threads, duration, [&] {
    return CheckCsr(csrs[verifies++ % csrs.size()]).ok();
  });
  if (ceiling.verify_per_s == 0) return Status(Code::kInternal, "the ceiling's CSR verification failed");
  ceiling.verify_cpu_us = (ProcessCpuSeconds() - cpu_before_verifies) * 1e6 / static_cast<double>(verifies);
  return ceiling;
}

// The environment a key store needs, made once for the whole run.
class Backends {
 public:
  Status Prepare(const std::vector<std::string>& stores, const std::filesystem::path& dir) {
    dir_ = dir;
    for (const auto& store : stores) {
      if (store == "pkcs11" && !hsm_) {
        SIGIL_ASSIGN_OR_RETURN(hsm_, testing::SoftHsm::Create());
      } else if (store == "tpm" && !tpm_) {
        SIGIL_ASSIGN_OR_RETURN(tpm_, testing::Swtpm::Start(dir / "swtpm", dir / "logs"));
      } else if (store != "soft" && store != "pkcs11" && store != "tpm") {
        return InvalidArgumentError("unknown key store " + store + " (soft, pkcs11, tpm)");
      }
    }
    return Status::Ok();
  }

  // A store of `kind` nobody has used yet: a new SoftHSM2 token or a new TPM key folder.
  Result<hw::KeyStoreConfig> FreshStore(const std::string& kind, const std::string& name) {
    hw::KeyStoreConfig config;
    if (kind == "soft") {
      config.kind = hw::KeyStoreKind::kSoft;
    } else if (kind == "pkcs11") {
      SIGIL_ASSIGN_OR_RETURN(testing::SoftHsmTokenInfo token, hsm_->InitToken(name));
      config.kind = hw::KeyStoreKind::kPkcs11;
      config.module_path = testing::kSoftHsmModule;
      config.token_label = token.label;
      config.pin_file = token.pin_file;
    } else {
      config.kind = hw::KeyStoreKind::kTpm;
      config.tcti = tpm_->tcti();
      config.data_dir = dir_ / ("tpm-keys-" + name);
      std::filesystem::create_directories(config.data_dir);
    }
    return config;
  }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<testing::SoftHsm> hsm_;
  std::unique_ptr<testing::Swtpm> tpm_;
};

constexpr size_t kAgents = 2;
constexpr size_t kEntriesPerAgent = 64;

// One key store in one CA mode: ceiling, then serverd with two agents, then each batch size.
Status RunConfiguration(const Options& options, Backends& backends, const std::string& store,
                        const std::string& mode, const std::filesystem::path& dir,
                        const std::vector<Bytes>& ceiling_csrs, Report& report) {
  const std::string prefix = mode + "/" + store;
  const bool slow_signer = store == "tpm" && mode == "direct";
  double seconds = options.seconds > 0 ? options.seconds : (options.quick ? 1.0 : 4.0);
  if (slow_signer) seconds = std::min(seconds, options.quick ? 1.0 : 2.0);
  const Seconds duration(seconds);
  const Seconds warm_up(options.quick ? 0.3 : 0.5);
  std::fprintf(stderr, "%s: load %s\n", prefix.c_str(), LoadAverage().c_str());

  SIGIL_ASSIGN_OR_RETURN(hw::KeyStoreConfig store_config, backends.FreshStore(store, mode));
  hw::KeyStoreConfig ceiling_store = store_config;
  if (mode == "delegated") ceiling_store = hw::KeyStoreConfig{.kind = hw::KeyStoreKind::kSoft};
  const Seconds ceiling_duration(options.quick ? 0.3 : 1.0);
  SIGIL_ASSIGN_OR_RETURN(Ceiling before, MeasureCeiling(ceiling_store, options.workers, ceiling_duration, ceiling_csrs));

  std::vector<std::pair<int, LoadResult>> loads;
  {
    BenchServerOptions server_options;
    server_options.key_store = store_config;
    server_options.ca_mode = mode == "direct" ? serverd::CaMode::kDirect : serverd::CaMode::kDelegated;
    server_options.signing_workers = options.workers;
    SIGIL_ASSIGN_OR_RETURN(auto server, BenchServer::Start(server_options, dir / prefix));

    std::vector<AgentWithEntries> agents(kAgents);
    for (size_t a = 0; a < kAgents; ++a) {
      SIGIL_ASSIGN_OR_RETURN(agents[a].agent, BenchAgent::Attest(*server));
      std::vector<RegistrationEntry> entries;
      for (size_t e = 0; e < kEntriesPerAgent; ++e) {
        entries.push_back(WorkloadEntry(server->trust_domain(),
                                        "agent" + std::to_string(a) + "/workload" + std::to_string(e),
                                        agents[a].agent->spiffe_id()));
      }
      SIGIL_ASSIGN_OR_RETURN(agents[a].entry_ids, server->CreateEntries(entries));
      agents[a].csrs = NewCsrs(kEntriesPerAgent);
    }

    for (int batch : options.batches) {
      // Enough SVIDs in flight to keep every worker's batches full, without queueing so many
      // behind a slow signer that a request waits seconds.
      const int in_flight_svids = slow_signer ? 128 : 512;
      const int concurrency = std::clamp(in_flight_svids / batch, slow_signer ? 2 : 4, 32);
      std::fprintf(stderr, "%s/batch%d: %d requests in flight, load %s\n", prefix.c_str(), batch, concurrency,
                   LoadAverage().c_str());
      loads.emplace_back(batch, RunLoad(agents, batch, concurrency, warm_up, duration));
      // The same batches one at a time: what a request costs when it does not queue.
      LoadResult alone = RunLoad(agents, batch, 1, Seconds(0.1), Seconds(options.quick ? 0.3 : 1.0));
      std::sort(alone.latencies_ms.begin(), alone.latencies_ms.end());
      const std::string name = prefix + "/batch" + std::to_string(batch);
      report.Metric(name + "/alone_p50_ms", Percentile(alone.latencies_ms, 0.5), "ms", false);
      report.Metric(name + "/alone_p99_ms", Percentile(alone.latencies_ms, 0.99), "ms", false);
      if (alone.failed_items > 0) {
        report.Error(name + " alone: " + std::to_string(alone.failed_items) + " items failed, first: " +
                     alone.first_failure);
      }
      report.Detail(prefix + "/batch" + std::to_string(batch) + "/requests_in_flight", concurrency, "");
    }
    agents.clear();
  }

  // Measured again once serverd has let go of the store (swtpm serves one connection): the
  // machine is shared, and the mean of both sides of the load is a fairer limit than either.
  SIGIL_ASSIGN_OR_RETURN(Ceiling after, MeasureCeiling(ceiling_store, options.workers, ceiling_duration, ceiling_csrs));
  const Ceiling ceiling{.sign_per_s = (before.sign_per_s + after.sign_per_s) / 2,
                        .verify_per_s = (before.verify_per_s + after.verify_per_s) / 2,
                        .sign_cpu_us = (before.sign_cpu_us + after.sign_cpu_us) / 2,
                        .verify_cpu_us = (before.verify_cpu_us + after.verify_cpu_us) / 2};
  report.Detail(prefix + "/ceiling/sign_per_s", ceiling.sign_per_s, "1/s");
  report.Detail(prefix + "/ceiling/csr_verify_per_s", ceiling.verify_per_s, "1/s");
  report.Detail(prefix + "/ceiling/svids_per_s", ceiling.svids_per_s(), "1/s");
  report.Detail(prefix + "/ceiling/svids_per_s_before", before.svids_per_s(), "1/s");
  report.Detail(prefix + "/ceiling/svids_per_s_after", after.svids_per_s(), "1/s");
  // For a swtpm the sign's CPU is mostly spent in the swtpm process, not counted here.
  const double ceiling_cpu_us = ceiling.sign_cpu_us + ceiling.verify_cpu_us;
  report.Detail(prefix + "/ceiling/cpu_us_per_svid", ceiling_cpu_us, "us");

  for (auto& [batch, load] : loads) {
    const std::string name = prefix + "/batch" + std::to_string(batch);
    if (load.failed_items > 0) {
      report.Error(name + ": " + std::to_string(load.failed_items) + " items failed, first: " + load.first_failure);
    }
    report.MetricWithCeiling(name + "/svids_per_s", load.svids_per_s, ceiling.svids_per_s(), "1/s");
    std::sort(load.latencies_ms.begin(), load.latencies_ms.end());
    report.Metric(name + "/p50_ms", Percentile(load.latencies_ms, 0.5), "ms", false);
    report.Metric(name + "/p99_ms", Percentile(load.latencies_ms, 0.99), "ms", false);
    report.Detail(name + "/cpu_us_per_svid", load.cpu_us_per_svid, "us");
    // The share of the CPU spent per SVID that the ceiling's sign and verify account for: near 1
    // means the pipeline adds little, whatever else the machine was doing.
    if (load.cpu_us_per_svid > 0) {
      report.Metric(name + "/ceiling_cpu_share", ceiling_cpu_us / load.cpu_us_per_svid, "", true);
    }
    report.Distribution(name + "/latency", load.latencies_ms, "ms");
    std::fprintf(stderr, "%s: %.0f SVIDs/s (ceiling %.0f), p50 %.2f ms, p99 %.2f ms, %.0f us CPU per SVID (ceiling %.0f)\n",
                 name.c_str(), load.svids_per_s, ceiling.svids_per_s(), Percentile(load.latencies_ms, 0.5),
                 Percentile(load.latencies_ms, 0.99), load.cpu_us_per_svid, ceiling_cpu_us);
  }
  return Status::Ok();
}

}  // namespace
}  // namespace sigil::bench

int main(int argc, char** argv) {
  using namespace sigil;
  using namespace sigil::bench;
  const Options options = ParseOptions(argc, argv);
  ConfigureLogging(LogLevel::kWarn, LogFormat::kText);
  Report report("agent_api_signing", options.quick);
  report.Detail("signing_workers", options.workers, "");

  testing::TempDir dir("sigil-agent-api-bench");
  Backends backends;
  if (Status prepared = backends.Prepare(options.stores, dir.path()); !prepared.ok()) {
    report.Error("cannot prepare the key stores: " + prepared.ToString());
    report.Print();
    return 1;
  }
  const std::vector<Bytes> ceiling_csrs = NewCsrs(64);
  bool all_ran = true;
  for (const auto& store : options.stores) {
    for (const auto& mode : options.modes) {
      Status ran = RunConfiguration(options, backends, store, mode, dir.path(), ceiling_csrs, report);
      if (!ran.ok()) {
        report.Error(mode + "/" + store + ": " + ran.ToString());
        all_ran = false;
      }
    }
  }
  report.Print();
  return all_ran ? 0 : 1;
}
