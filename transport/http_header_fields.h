// HTTP/1 header fields (RFC 9112, section 5), as both of the small HTTP/1 readers here take them:
// the GET server's request and the HTTPS GET client's response.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sigil::transport {

// Names lower-cased, values without surrounding blanks, in the order sent.
using HttpHeaderFields = std::vector<std::pair<std::string, std::string>>;

inline constexpr size_t kMaxHttpHeaderFields = 100;

// Reads the fields that follow a start line: `fields` is the rest of the head after the start
// line, each field preceded by "\r\n". False when a field has no name, a blank in its name, no
// colon, or there are more than kMaxHttpHeaderFields.
bool ReadHttpHeaderFields(std::string_view fields, HttpHeaderFields& out);

}  // namespace sigil::transport
