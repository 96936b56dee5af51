// Registration entries and agents as JSON, in the shapes SPIRE's API and CLI use, so
// `serverd entry show -output json` reads like `spire-server entry show -output json` and a
// `-data` file written for SPIRE works here.
//
//   {"id": "...", "spiffe_id": {"trust_domain": "example.org", "path": "/web"},
//    "parent_id": {...}, "selectors": [{"type": "unix", "value": "uid:1001"}],
//    "x509_svid_ttl": 3600, "jwt_svid_ttl": 300, "dns_names": [], "federates_with": [],
//    "admin": false, "downstream": false, "expires_at": "0", "hint": "",
//    "revision_number": "3", "created_at": "1763967600"}
//
// Reading also accepts IDs as plain strings ("spiffe_id": "spiffe://example.org/web") and
// numbers as strings or integers, as SPIRE's older -data files have them.
//
// Thread safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/registration_entry.h"
#include "core/status.h"
#include "serverd/datastore/datastore.h"

namespace sigil::serverd {

nlohmann::json EntryToJson(const RegistrationEntry& entry);
// InvalidArgument naming the field ("entries[2].x509_svid_ttl: expected a number").
Result<RegistrationEntry> EntryFromJson(const nlohmann::json& json, const std::string& where = "entry");

// A -data file: {"entries": [...]}.
Result<std::vector<RegistrationEntry>> EntriesFromDataFile(std::string_view text, const std::string& source);

nlohmann::json AgentToJson(const AttestedAgent& agent);
Result<AttestedAgent> AgentFromJson(const nlohmann::json& json);

// {"trust_domain": "example.org", "path": "/web"} for a SPIFFE ID string.
nlohmann::json SpiffeIdToJson(const std::string& id);

}  // namespace sigil::serverd
