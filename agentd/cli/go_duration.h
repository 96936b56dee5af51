// Go's durations, as spire-agent reads its -timeout and prints how long an answer took.
//
// Thread safety: plain functions.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/status.h"

namespace sigil::agentd {

// Go's duration syntax, as spire-agent's -timeout takes it: "5s", "500ms", "1m30s".
Result<std::chrono::milliseconds> ParseGoDuration(std::string_view text);
// Go's Duration.String(): "8.8537ms", "1.5s", "2m3s".
std::string FormatGoDuration(std::chrono::nanoseconds duration);

}  // namespace sigil::agentd
