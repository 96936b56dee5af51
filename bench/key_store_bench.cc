// Raw signing rate of each key store: the ceiling the signing pipeline is measured against.
// Each backend is real: OpenSSL in memory, a SoftHSM2 token, a swtpm on loopback.
//
//   build/bench/key_store_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstdio>
#include <map>

#include "hw/key_store.h"
#include "tests/support/softhsm.h"
#include "tests/support/swtpm.h"

namespace sigil::hw {
namespace {

std::map<std::string, std::shared_ptr<Signer>> signers;

void BM_SignDigest(benchmark::State& state, const std::string& backend) {
  Signer& signer = *signers.at(backend);
  uint8_t digest[SHA256_DIGEST_LENGTH] = {};
  SHA256(reinterpret_cast<const uint8_t*>(backend.data()), backend.size(), digest);
  for (auto _ : state) {
    auto signature = signer.SignDigest(SignatureScheme::kES256, digest);
    if (!signature.ok()) {
      state.SkipWithError(signature.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(signature->data());
  }
  state.counters["signs_per_second"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace
}  // namespace sigil::hw

int main(int argc, char** argv) {
  using namespace sigil;
  benchmark::Initialize(&argc, argv);
  testing::TempDir dir("sigil-bench-keys");

  auto hsm = testing::SoftHsm::Create();
  auto token = hsm.ok() ? (*hsm)->InitToken("bench") : Result<testing::SoftHsmTokenInfo>(hsm.status());
  auto tpm = testing::Swtpm::Start(dir / "tpm", dir / "logs");
  if (!token.ok() || !tpm.ok()) {
    std::fprintf(stderr, "cannot start the key store backends: %s %s\n",
                 token.status().ToString().c_str(), tpm.status().ToString().c_str());
    return 1;
  }
  const std::map<std::string, std::string> uris = {
      {"soft", "soft:"},
      {"pkcs11_softhsm", token->uri()},
      {"tpm_swtpm", "tpm:" + (*tpm)->tcti() + "?data-dir=" + (dir / "tpm-keys").string()},
  };
  std::vector<std::unique_ptr<hw::KeyStore>> stores;
  for (const auto& [name, uri] : uris) {
    auto store = hw::OpenKeyStore(uri);
    if (!store.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), store.status().ToString().c_str());
      return 1;
    }
    auto signer = (*store)->CreateKey("bench", KeyType::kEcP256);
    if (!signer.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), signer.status().ToString().c_str());
      return 1;
    }
    hw::signers[name] = *signer;
    stores.push_back(std::move(*store));
    for (int threads : {1, 2}) {
      benchmark::RegisterBenchmark(("SignDigest/ES256/" + name).c_str(), hw::BM_SignDigest, name)
          ->Threads(threads)
          ->UseRealTime()
          ->MinTime(name == "tpm_swtpm" ? 1.0 : 0.5);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  hw::signers.clear();
  stores.clear();
  return 0;
}
