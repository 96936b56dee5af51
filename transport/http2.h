// Pieces shared by the HTTP/2 server and client: header lists and the nghttp2 name/value
// conversion.
//
// Thread safety: plain values.
#pragma once

#include <nghttp2/nghttp2.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sigil::transport {

// Field names are lower case, as HTTP/2 requires.
using Headers = std::vector<std::pair<std::string, std::string>>;

// The first value of `name`, or "" when absent.
std::string_view FindHeader(const Headers& headers, std::string_view name);

// nghttp2 views of `headers`, valid while `headers` lives. `pseudo` come first.
std::vector<nghttp2_nv> ToNv(const Headers& pseudo, const Headers& headers);

}  // namespace sigil::transport
