// The admin API's request bodies: the text as serverd's admin socket receives it, read by
// every body reader of serverd/admin (a reader that throws aborts here, as it would have
// ended serverd), and as a `-data` entries or federation relationships file.
#include <nlohmann/json.hpp>

#include "serverd/admin/agent_json.h"
#include "serverd/admin/entry_json.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sigil;
using namespace sigil::serverd;

namespace {

void ReadEntry(const RegistrationEntry& entry) {
  static const TrustDomain td = *TrustDomain::Parse(fuzz::kTrustDomain);
  if (!entry.Validate(td).ok()) return;
  // A valid entry is written as SPIRE's JSON and read back unchanged.
  auto again = EntryFromJson(nlohmann::json::parse(EntryToJson(entry).dump()));
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(*again == entry);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = fuzz::AsText(data, size);
  if (auto entries = EntriesFromDataFile(text, "fuzz.json"); entries.ok()) {
    for (const auto& entry : *entries) ReadEntry(entry);
  }
  (void)FederationRelationshipsFromDataFile(text, "fuzz.json");
  if (auto before = ParseExpiresBefore(text); before.ok()) FUZZ_CHECK(text.size() == 25 || text.size() == 29);
  const nlohmann::json body = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return 0;
  if (auto entries = EntriesRequestFromJson(body); entries.ok()) {
    for (const auto& entry : *entries) ReadEntry(entry);
  }
  if (auto entry = EntryFromJson(body); entry.ok()) ReadEntry(*entry);
  (void)AgentFromJson(body);
  (void)AgentFilterFromJson(body);
  (void)EntryFilterFromJson(body);
  (void)RequiredStringFromJson(body, "id");
  (void)StringListFromJson(body, "ids");
  (void)FederatedBundlesFromJson(body);
  (void)BundleDeleteModeFromJson(body);
  (void)FederationRelationshipsFromJson(body);
  if (auto token = JoinTokenRequestFromJson(body); token.ok()) {
    FUZZ_CHECK(token->ttl.count() > 0 && token->ttl <= kMaxJoinTokenTtl);
  }
  return 0;
}
