// How the `agentd api` commands print with SPIRE's -output flag: `pretty` (the default, the
// text spire-agent prints) or `json`, the Workload API's answers as spire-agent prints them.
//
// spire-agent marshals each answer with protojson (proto field names, unset scalars, lists and
// maps included), drops the nulls, and writes the result again with Go's encoding/json: keys in
// sorted order, no spaces, `<`, `>` and `&` escaped, one line; several answers (`fetch jwt`:
// the JWTSVIDResponse, then the JWTBundlesResponse) as one array. Bytes are standard base64.
//
// Thread safety: plain functions.
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace sigil::agentd {

enum class OutputFormat { kPretty, kJson };

// "pretty" (or "prettyprint") and "json", in any case, as spire-agent reads -output.
Result<OutputFormat> ParseOutputFormat(std::string_view name);

// `messages` as spire-agent's -output json prints them, ending with a newline.
Result<std::string> WorkloadApiJson(const std::vector<const google::protobuf::Message*>& messages);

}  // namespace sigil::agentd
