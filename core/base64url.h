// Base64 in the two spellings SPIFFE documents use: base64url without padding (RFC 7515, for
// JWS parts and JWK key parameters) and standard padded base64 (RFC 4648, for JWK "x5c").
//
// Decoders accept only canonical input: no whitespace, no stray padding, and no padding at all
// in base64url. Errors are InvalidArgument naming the offending character or length.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/openssl_util.h"
#include "core/status.h"

namespace sigil {

std::string Base64UrlEncode(std::span<const uint8_t> data);
Result<Bytes> Base64UrlDecode(std::string_view text);

std::string Base64Encode(std::span<const uint8_t> data);
Result<Bytes> Base64Decode(std::string_view text);

inline std::span<const uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

}  // namespace sigil
