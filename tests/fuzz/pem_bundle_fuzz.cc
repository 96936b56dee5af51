// A PEM bundle of X.509 authorities, as `bundle set -format pem` and the agent's
// trust_bundle_path give it.
#include "core/trust_bundle.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sigil;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const TrustDomain td = *TrustDomain::Parse(fuzz::kTrustDomain);
  auto bundle = X509BundleFromPem(td, fuzz::AsText(data, size));
  if (!bundle.ok()) return 0;
  FUZZ_CHECK(!bundle->authorities.empty());
  auto pem = X509BundleToPem(*bundle);
  FUZZ_CHECK(pem.ok());
  auto again = X509BundleFromPem(td, *pem);
  FUZZ_CHECK(again.ok() && again->authorities.size() == bundle->authorities.size());
  for (const auto& cert : bundle->authorities) {
    auto der = CertToDer(cert.get());
    FUZZ_CHECK(der.ok() && CertFromDer(*der).ok());
  }
  return 0;
}
