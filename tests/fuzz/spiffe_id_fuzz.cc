// SPIFFE IDs and trust domain names as they arrive in entries, CSRs, tokens and flags.
#include "core/spiffe_id.h"
#include "tests/fuzz/fuzz_support.h"

using sigil::SpiffeId;
using sigil::TrustDomain;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = sigil::fuzz::AsText(data, size);
  if (auto id = SpiffeId::Parse(text); id.ok()) {
    // What parses prints back as itself and parses again to the same ID.
    auto again = SpiffeId::Parse(id->str());
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(again->str() == id->str());
    FUZZ_CHECK(id->MemberOf(id->trust_domain()));
    auto rebuilt = SpiffeId::FromPath(id->trust_domain(), id->path());
    FUZZ_CHECK(rebuilt.ok() && rebuilt->str() == id->str());
  }
  if (auto td = TrustDomain::Parse(text); td.ok()) {
    FUZZ_CHECK(TrustDomain::Parse(td->name()).ok());
    (void)SpiffeId::FromPath(*td, text);
  }
  (void)sigil::ValidateTrustDomainName(text);
  (void)sigil::ValidateSpiffeIdPath(text);
  return 0;
}
