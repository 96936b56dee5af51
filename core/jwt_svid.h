// JWT-SVIDs per the SPIFFE JWT-SVID standard: JWS compact tokens signed by a trust domain's JWT
// authority, with header {alg, kid, typ: "JWT"} and claims sub (the SPIFFE ID), aud, exp, iat.
//
// Minting signs through a Signer (ES256, ES384 or RS256 by the key's type), so the key may live
// in a token. Validation accepts exactly those three algorithms and nothing else ("none" and
// HMAC in particular), checks the signature with the bundle's key for the token's kid, then the
// claims: exp in the future (no leeway), nbf if present not in the future, the expected
// audience among aud (a string or an array), and sub a SPIFFE ID in the bundle's trust domain.
//
// Errors: InvalidArgument for a token that is not well-formed (parts, base64url, JSON, claim
// types), Unauthenticated for one that is well-formed but must not be trusted (unknown kid,
// bad signature, expired, wrong audience, foreign trust domain); the message names which.
// Thread safety: pure functions over immutable inputs; safe from any thread.
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/signer.h"
#include "core/spiffe_id.h"
#include "core/status.h"
#include "core/trust_bundle.h"
#include "core/x509_ca.h"

namespace sigil {

// Longest token ValidateJwtSvid reads; anything longer is refused before decoding.
inline constexpr size_t kMaxJwtSvidLength = 16 * 1024;

struct JwtSvidParams {
  explicit JwtSvidParams(SpiffeId id) : spiffe_id(std::move(id)) {}

  SpiffeId spiffe_id;
  std::vector<std::string> audience;  // at least one; a single one is emitted as a string
  std::chrono::seconds ttl{std::chrono::minutes(5)};
  TimePoint now = std::chrono::system_clock::now();
  std::string issuer;  // the "iss" claim (serverd's jwt_issuer); none when empty
};

struct JwtSvid {
  std::string token;
  SpiffeId spiffe_id;
  std::vector<std::string> audience;
  TimePoint expires_at;
  TimePoint issued_at;  // epoch when the token has no iat
};

// A request names at most this many audiences, each at most this long: enough for every
// real use (SPIRE's examples name one or two), small enough that neither a token nor the
// agent's cache of them grows with what a caller chooses to send.
inline constexpr size_t kMaxJwtAudiences = 32;
inline constexpr size_t kMaxJwtAudienceBytes = 512;

// InvalidArgument when there is no audience, one is empty or longer than kMaxJwtAudienceBytes,
// or there are more than kMaxJwtAudiences.
Status CheckJwtAudiences(std::span<const std::string> audience);

// Signs a JWT-SVID with `key`, naming it `key_id` in the header. InvalidArgument when the
// audiences fail CheckJwtAudiences, the TTL is not positive or longer than kMaxSvidTtl, or the
// key ID is empty.
Result<JwtSvid> MintJwtSvid(Signer& key, std::string_view key_id, const JwtSvidParams& params);

// The claims (payload JSON) of a compact JWS, checking nothing: for choosing the bundle a token
// is then validated against, and for reading a token one has just been given.
Result<std::string> UnverifiedJwtClaims(std::string_view token);

// The header's "kid" of a compact JWS, checking nothing: which authority signed a token one holds.
Result<std::string> UnverifiedJwtKeyId(std::string_view token);

// Validates `token` against `bundle` for `audience` at `now`, and returns what it says.
Result<JwtSvid> ValidateJwtSvid(std::string_view token, const JwtBundle& bundle,
                                std::string_view audience,
                                TimePoint now = std::chrono::system_clock::now());

}  // namespace sigil
