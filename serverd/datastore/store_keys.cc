#include "serverd/datastore/store_keys.h"

#include <openssl/rand.h>

#include <nlohmann/json.hpp>

#include "core/openssl_util.h"
#include "serverd/datastore/datastore.h"

namespace sigil::serverd {

std::string_view CaSlotStateName(CaSlotState state) {
  switch (state) {
    case CaSlotState::kPrepared: return "prepared";
    case CaSlotState::kActive: return "active";
    case CaSlotState::kRetired: return "retired";
  }
  return "unknown";
}

std::string NewEntryId() {
  uint8_t b[16];
  RAND_bytes(b, sizeof(b));
  b[6] = (b[6] & 0x0f) | 0x40;  // version 4
  b[8] = (b[8] & 0x3f) | 0x80;  // RFC 4122 variant
  const std::string hex = HexEncode(b);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
         hex.substr(20);
}

std::string EntrySelectorKey(const std::vector<Selector>& selectors) {
  const SelectorSet sorted(selectors);
  std::string key;
  for (const Selector& s : sorted.items()) key += s.str() + "\n";
  return key;
}

std::string JoinTokenHash(const std::string& token) {
  return HexEncode(Sha256({reinterpret_cast<const uint8_t*>(token.data()), token.size()}));
}

std::string JsonArray(const std::vector<std::string>& values) { return nlohmann::json(values).dump(); }

}  // namespace sigil::serverd
