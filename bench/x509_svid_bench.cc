// What issuing one X509-SVID from a CSR costs with a soft CA key, and how much of that is the
// signature itself: the rest (CSR parsing and its signature check, building the TBS, encoding,
// parsing the result back) is what Sigil adds on top of the key store's raw signing rate.
// Checking an SVID and minting/validating JWT-SVIDs are measured beside it.
//
//   build/bench/x509_svid_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <memory>

#include "core/csr.h"
#include "core/jwt_svid.h"
#include "core/x509_ca.h"
#include "core/x509_svid.h"
#include "hw/soft_key_store.h"

namespace sigil {
namespace {

struct Fixture {
  std::unique_ptr<X509Ca> ca;
  std::shared_ptr<Signer> ca_key;
  EvpPkeyPtr leaf_key;
  Bytes csr;
  Bytes leaf_tbs;  // the DER a leaf's signature covers, for the signature-alone figure
  X509Bundle bundle{*TrustDomain::Parse("example.org")};
  std::unique_ptr<X509Svid> svid;
  std::string jwt;
};

Fixture* fixture = nullptr;

X509SvidParams Params() {
  X509SvidParams params(*SpiffeId::Parse("spiffe://example.org/ns/prod/sa/web"));
  params.dns_names = {"web.example.org"};
  return params;
}

void Rate(benchmark::State& state, const char* name) {
  state.counters[name] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// The server's hot path: CSR in, DER chain out.
void BM_MintFromCsr(benchmark::State& state) {
  const X509SvidParams params = Params();
  for (auto _ : state) {
    auto svid = MintX509SvidDerFromCsr(*fixture->ca, fixture->csr, params);
    if (!svid.ok()) {
      state.SkipWithError(svid.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(svid->chain_der.data());
  }
  Rate(state, "svids_per_second");
}

// Without the CSR check: what building, signing and encoding cost.
void BM_MintFromPublicKey(benchmark::State& state) {
  const X509SvidParams params = Params();
  for (auto _ : state) {
    auto svid = MintX509SvidDer(*fixture->ca, fixture->leaf_key.get(), params);
    if (!svid.ok()) {
      state.SkipWithError(svid.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(svid->chain_der.data());
  }
  Rate(state, "svids_per_second");
}

// As MintFromCsr, with the leaf parsed back into an X509 as well.
void BM_MintFromCsrParsed(benchmark::State& state) {
  const X509SvidParams params = Params();
  for (auto _ : state) {
    auto svid = MintX509SvidFromCsr(*fixture->ca, fixture->csr, params);
    if (!svid.ok()) {
      state.SkipWithError(svid.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(svid->chain.data());
  }
  Rate(state, "svids_per_second");
}

void BM_CheckCsr(benchmark::State& state) {
  for (auto _ : state) {
    auto key = CheckCsr(fixture->csr);
    if (!key.ok()) {
      state.SkipWithError(key.status().ToString().c_str());
      break;
    }
  }
  Rate(state, "csrs_per_second");
}

void BM_SignatureAlone(benchmark::State& state) {
  for (auto _ : state) {
    auto signature = fixture->ca_key->SignMessage(SignatureScheme::kES256, fixture->leaf_tbs);
    if (!signature.ok()) {
      state.SkipWithError(signature.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(signature->data());
  }
  Rate(state, "signs_per_second");
}

void BM_VerifyX509Svid(benchmark::State& state) {
  const std::vector<X509*> chain = fixture->svid->raw_chain();
  const TimePoint now = std::chrono::system_clock::now();
  for (auto _ : state) {
    auto id = VerifyX509Svid(chain, fixture->bundle, now);
    if (!id.ok()) {
      state.SkipWithError(id.status().ToString().c_str());
      break;
    }
  }
  Rate(state, "checks_per_second");
}

void BM_MintJwtSvid(benchmark::State& state) {
  JwtSvidParams params(*SpiffeId::Parse("spiffe://example.org/web"));
  params.audience = {"db"};
  for (auto _ : state) {
    auto jwt = MintJwtSvid(*fixture->ca_key, "k1", params);
    if (!jwt.ok()) {
      state.SkipWithError(jwt.status().ToString().c_str());
      break;
    }
  }
  Rate(state, "tokens_per_second");
}

void BM_ValidateJwtSvid(benchmark::State& state) {
  JwtBundle bundle(*TrustDomain::Parse("example.org"));
  bundle.authorities.emplace("k1", JwtAuthority(UpRef(fixture->ca_key->public_key())));
  for (auto _ : state) {
    auto jwt = ValidateJwtSvid(fixture->jwt, bundle, "db");
    if (!jwt.ok()) {
      state.SkipWithError(jwt.status().ToString().c_str());
      break;
    }
  }
  Rate(state, "tokens_per_second");
}

// Console output as usual, plus the mint-versus-signature comparison at the end.
class ShareReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Iteration && run.threads == 1) {
        ns_per_op_[run.run_name.function_name] = run.GetAdjustedRealTime();
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }

  void PrintShare() const {
    auto mint = ns_per_op_.find("MintFromCsr");
    auto sign = ns_per_op_.find("SignatureAlone");
    if (mint == ns_per_op_.end() || sign == ns_per_op_.end() || mint->second <= 0) return;
    std::printf(
        "\nmint from CSR: %.0f SVIDs/s (%.1f us); ES256 signature alone: %.0f/s (%.1f us); "
        "share of mint time outside the signature: %.0f%%\n",
        1e9 / mint->second, mint->second / 1e3, 1e9 / sign->second, sign->second / 1e3,
        100.0 * (mint->second - sign->second) / mint->second);
  }

 private:
  std::map<std::string, double> ns_per_op_;
};

}  // namespace
}  // namespace sigil

int main(int argc, char** argv) {
  using namespace sigil;
  benchmark::Initialize(&argc, argv);

  Fixture f;
  fixture = &f;
  auto ca_key = hw::GenerateSoftKey(KeyType::kEcP256);
  auto signer = ca_key.ok() ? hw::MakeSoftSigner(std::move(*ca_key))
                            : Result<std::shared_ptr<Signer>>(ca_key.status());
  auto leaf_key = hw::GenerateSoftKey(KeyType::kEcP256);
  if (!signer.ok() || !leaf_key.ok()) {
    std::fprintf(stderr, "cannot make keys: %s %s\n", signer.status().ToString().c_str(),
                 leaf_key.status().ToString().c_str());
    return 1;
  }
  f.ca_key = *signer;
  f.leaf_key = std::move(*leaf_key);
  auto ca = X509Ca::NewRoot(*TrustDomain::Parse("example.org"), f.ca_key, {});
  auto csr = MakeCsr(f.leaf_key.get());
  if (!ca.ok() || !csr.ok()) {
    std::fprintf(stderr, "cannot make CA or CSR: %s %s\n", ca.status().ToString().c_str(),
                 csr.status().ToString().c_str());
    return 1;
  }
  f.ca = std::make_unique<X509Ca>(std::move(*ca));
  f.csr = std::move(*csr);
  f.bundle.Add(f.ca->cert());
  auto svid = MintX509SvidFromCsr(*f.ca, f.csr, Params());
  JwtSvidParams jwt_params(*SpiffeId::Parse("spiffe://example.org/web"));
  jwt_params.audience = {"db"};
  auto jwt = MintJwtSvid(*f.ca_key, "k1", jwt_params);
  if (!svid.ok() || !jwt.ok()) {
    std::fprintf(stderr, "cannot mint: %s %s\n", svid.status().ToString().c_str(),
                 jwt.status().ToString().c_str());
    return 1;
  }
  f.svid = std::make_unique<X509Svid>(std::move(*svid));
  f.jwt = jwt->token;
  const int tbs_len = i2d_re_X509_tbs(f.svid->leaf(), nullptr);
  f.leaf_tbs.resize(static_cast<size_t>(tbs_len));
  unsigned char* p = f.leaf_tbs.data();
  i2d_re_X509_tbs(f.svid->leaf(), &p);

  for (int threads : {1, 2}) {
    benchmark::RegisterBenchmark("MintFromCsr", BM_MintFromCsr)->Threads(threads)->UseRealTime();
  }
  benchmark::RegisterBenchmark("MintFromPublicKey", BM_MintFromPublicKey)->UseRealTime();
  benchmark::RegisterBenchmark("MintFromCsrParsed", BM_MintFromCsrParsed)->UseRealTime();
  benchmark::RegisterBenchmark("CheckCsr", BM_CheckCsr)->UseRealTime();
  benchmark::RegisterBenchmark("SignatureAlone", BM_SignatureAlone)->UseRealTime();
  benchmark::RegisterBenchmark("VerifyX509Svid", BM_VerifyX509Svid)->UseRealTime();
  benchmark::RegisterBenchmark("MintJwtSvid", BM_MintJwtSvid)->UseRealTime();
  benchmark::RegisterBenchmark("ValidateJwtSvid", BM_ValidateJwtSvid)->UseRealTime();

  ShareReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintShare();
  benchmark::Shutdown();
  fixture = nullptr;
  return 0;
}
