// Attested agents as JSON, in the shape of SPIRE's types.Agent, and the filter of SPIRE's
// ListAgents and CountAgents:
//
//   {"id": {"trust_domain": "example.org", "path": "/spire/agent/join_token/…"},
//    "attestation_type": "join_token", "x509svid_serial_number": "0a…",
//    "x509svid_expires_at": "1763967600", "selectors": [...], "banned": false,
//    "can_reattest": false, "created_at": "1763960000"}
//
//   {"filter": {"by_attestation_type": "tpm_devid", "by_selector_match": {"selectors", "match"},
//               "by_banned": true, "by_can_reattest": false,
//               "by_expires_before": "2026-12-05 10:00:00 +0000 +00"}}
//
// Every reader is total, as those of entry_json.h.
//
// Thread safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string_view>

#include "core/status.h"
#include "serverd/datastore/datastore.h"

namespace sigil::serverd {

nlohmann::json AgentToJson(const AttestedAgent& agent);
Result<AttestedAgent> AgentFromJson(const nlohmann::json& json);

Result<AgentFilter> AgentFilterFromJson(const nlohmann::json& body);

// The layout SPIRE's `agent list -expiresBefore` takes, Go's "2006-01-02 15:04:05 -0700 -07"
// ("2026-12-05 10:00:00 +0100 +01"; the last part may be left out), as Unix seconds.
// InvalidArgument showing the layout otherwise.
inline constexpr std::string_view kExpiresBeforeLayout = "2006-01-02 15:04:05 -0700 -07";
Result<int64_t> ParseExpiresBefore(std::string_view text);

}  // namespace sigil::serverd
