// A SPIFFE JWKS bundle, as a federated trust domain or an operator's `bundle set` gives it.
#include "core/trust_bundle.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sigil;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const TrustDomain td = *TrustDomain::Parse(fuzz::kTrustDomain);
  auto bundle = TrustBundleFromJwks(td, fuzz::AsText(data, size));
  if (!bundle.ok()) return 0;
  // What loads is written back as a JWKS that loads to the same authorities.
  auto written = TrustBundleToJwks(*bundle);
  FUZZ_CHECK_OK(written);
  auto again = TrustBundleFromJwks(td, *written);
  FUZZ_CHECK_OK(again);
  FUZZ_CHECK(again->x509.authorities.size() == bundle->x509.authorities.size());
  FUZZ_CHECK(again->jwt.authorities.size() == bundle->jwt.authorities.size());
  FUZZ_CHECK(again->sequence == bundle->sequence && again->refresh_hint == bundle->refresh_hint);
  return 0;
}
