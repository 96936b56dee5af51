#include "core/jwt_svid.h"

#include <openssl/rsa.h>

#include <nlohmann/json.hpp>

#include "core/base64url.h"
#include "core/registration_entry.h"

namespace sigil {
namespace {

using Json = nlohmann::ordered_json;
using std::chrono::seconds;
using std::chrono::system_clock;

Status Malformed(std::string message) {
  return InvalidArgumentError("malformed JWT-SVID: " + message);
}
Status Untrusted(std::string message) {
  return UnauthenticatedError("JWT-SVID rejected: " + message);
}

Result<Json> DecodeJsonPart(std::string_view part, const char* what) {
  auto bytes = Base64UrlDecode(part);
  if (!bytes.ok()) return Malformed(std::string(what) + " is not base64url: " + bytes.status().message());
  Json json = Json::parse(bytes->begin(), bytes->end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Malformed(std::string(what) + " is not valid JSON");
  if (!json.is_object()) return Malformed(std::string(what) + " is not a JSON object");
  return json;
}

// Whether `alg` may verify with `key`: the algorithm follows from the key, never the token.
bool AlgorithmFitsKey(SignatureScheme scheme, EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "RSA")) return scheme == SignatureScheme::kRS256;
  auto type = KeyTypeOf(key);
  return type.ok() && SchemeFitsKey(scheme, *type);
}

bool VerifySignature(EVP_PKEY* key, SignatureScheme scheme, std::string_view signed_part,
                     std::span<const uint8_t> signature_der) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pkey_ctx = nullptr;
  bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), &pkey_ctx, SchemeDigest(scheme), nullptr, key) == 1;
  if (ok && scheme == SignatureScheme::kRS256) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pkey_ctx, RSA_PKCS1_PADDING) == 1;
  }
  ok = ok && EVP_DigestVerify(ctx.get(), signature_der.data(), signature_der.size(),
                              reinterpret_cast<const unsigned char*>(signed_part.data()),
                              signed_part.size()) == 1;
  ClearOpenSSLErrors();
  return ok;
}

Result<int64_t> IntClaim(const Json& claims, const char* name, bool required) {
  auto it = claims.find(name);
  if (it == claims.end()) {
    if (required) return Malformed(std::string("claim \"") + name + "\" is missing");
    return int64_t{0};
  }
  // Up to the end of year 9999, so arithmetic on the value cannot overflow.
  constexpr double kMaxNumericDate = 253402300799.0;
  if (!it->is_number()) return Malformed(std::string("claim \"") + name + "\" is not a number");
  const double value = it->get<double>();
  if (!(value >= 0 && value <= kMaxNumericDate)) {
    return Malformed(std::string("claim \"") + name + "\" is out of range");
  }
  // NumericDate may carry a fraction; whole seconds are enough for every check here.
  return it->is_number_integer() ? it->get<int64_t>() : static_cast<int64_t>(value);
}

// Checks the header (algorithm, key ID) against `bundle` and the signature over `signed_part`:
// nothing in the payload counts before this passes.
Status VerifyJws(const Json& header, std::string_view signed_part, Bytes signature, const JwtBundle& bundle,
                 TimePoint now) {
  auto alg_it = header.find("alg");
  if (alg_it == header.end() || !alg_it->is_string()) return Malformed("header has no \"alg\"");
  const std::string alg = alg_it->get<std::string>();
  if (alg == "none") return Untrusted("unsigned tokens (alg \"none\") are never accepted");
  auto scheme = ParseJwsAlgorithm(alg);
  if (!scheme.ok()) return Untrusted("algorithm \"" + alg + "\" is not accepted: " + scheme.status().message());
  if (auto typ = header.find("typ"); typ != header.end()) {
    if (!typ->is_string() || (*typ != "JWT" && *typ != "JOSE")) {
      return Malformed("header \"typ\" must be \"JWT\" or \"JOSE\"");
    }
  }
  if (header.contains("crit")) return Untrusted("header \"crit\" extensions are not supported");
  auto kid_it = header.find("kid");
  if (kid_it == header.end() || !kid_it->is_string()) return Malformed("header has no \"kid\"");
  const std::string kid = kid_it->get<std::string>();

  auto authority = bundle.authorities.find(kid);
  if (authority == bundle.authorities.end()) {
    return Untrusted("key ID \"" + kid + "\" is not in the JWT bundle of " +
                     bundle.trust_domain.name());
  }
  if (authority->second.expires_at.has_value() && *authority->second.expires_at <= now) {
    return Untrusted("JWT authority \"" + kid + "\" has expired");
  }
  EVP_PKEY* key = authority->second.public_key.get();
  if (key == nullptr || !AlgorithmFitsKey(*scheme, key)) {
    return Untrusted("algorithm " + alg + " does not fit the key of \"" + kid + "\"");
  }
  Bytes signature_der;
  if (*scheme == SignatureScheme::kRS256) {
    signature_der = std::move(signature);
  } else {
    const size_t field = *scheme == SignatureScheme::kES384 ? 48 : 32;
    if (signature.size() != 2 * field) {
      return Untrusted(alg + " signature must be " + std::to_string(2 * field) + " bytes, got " +
                       std::to_string(signature.size()));
    }
    auto der = EcdsaRawToDer(signature);
    if (!der.ok()) return Untrusted("signature is not a valid ECDSA signature");
    signature_der = std::move(*der);
  }
  if (!VerifySignature(key, *scheme, signed_part, signature_der)) {
    return Untrusted("signature does not verify with key \"" + kid + "\"");
  }
  return Status::Ok();
}

// The "aud" claim: one string or an array of them, never empty.
Result<std::vector<std::string>> Audiences(const Json& claims) {
  std::vector<std::string> audiences;
  auto aud_it = claims.find("aud");
  if (aud_it == claims.end()) return Malformed("claim \"aud\" is missing");
  if (aud_it->is_string()) {
    audiences.push_back(aud_it->get<std::string>());
  } else if (aud_it->is_array()) {
    for (const auto& a : *aud_it) {
      if (!a.is_string()) return Malformed("claim \"aud\" has an element that is not a string");
      audiences.push_back(a.get<std::string>());
    }
  } else {
    return Malformed("claim \"aud\" is neither a string nor an array");
  }
  if (audiences.empty()) return Malformed("claim \"aud\" is empty");
  return audiences;
}

}  // namespace

Status CheckJwtAudiences(std::span<const std::string> audience) {
  if (audience.empty()) return InvalidArgumentError("JWT-SVID needs at least one audience");
  if (audience.size() > kMaxJwtAudiences) {
    return InvalidArgumentError("JWT-SVID names " + std::to_string(audience.size()) + " audiences; at most " +
                                std::to_string(kMaxJwtAudiences) + " are allowed");
  }
  for (const auto& aud : audience) {
    if (aud.empty()) return InvalidArgumentError("JWT-SVID audience is empty");
    if (aud.size() > kMaxJwtAudienceBytes) {
      return InvalidArgumentError("JWT-SVID audience of " + std::to_string(aud.size()) + " bytes; at most " +
                                  std::to_string(kMaxJwtAudienceBytes) + " are allowed");
    }
  }
  return Status::Ok();
}

Result<JwtSvid> MintJwtSvid(Signer& key, std::string_view key_id, const JwtSvidParams& params) {
  if (key_id.empty()) return InvalidArgumentError("JWT-SVID key ID is empty");
  SIGIL_RETURN_IF_ERROR(CheckJwtAudiences(params.audience));
  if (params.ttl.count() <= 0 || params.ttl > kMaxSvidTtl) {
    return InvalidArgumentError("JWT-SVID TTL must be positive and at most " +
                                std::to_string(kMaxSvidTtl.count()) + "s, got " +
                                std::to_string(params.ttl.count()) + "s");
  }
  const SignatureScheme scheme = DefaultSchemeFor(key.key_type());
  Json header;
  header["alg"] = JwsAlgorithmName(scheme);
  header["kid"] = key_id;
  header["typ"] = "JWT";
  const int64_t iat = UnixSeconds(params.now);
  const int64_t exp = iat + params.ttl.count();
  Json claims;
  claims["sub"] = params.spiffe_id.str();
  if (!params.issuer.empty()) claims["iss"] = params.issuer;
  if (params.audience.size() == 1) {
    claims["aud"] = params.audience.front();
  } else {
    claims["aud"] = params.audience;
  }
  claims["exp"] = exp;
  claims["iat"] = iat;
  std::string token = Base64UrlEncode(AsBytes(header.dump())) + "." +
                      Base64UrlEncode(AsBytes(claims.dump()));
  auto signature = key.SignMessageJws(scheme, AsBytes(token));
  if (!signature.ok()) return signature.status().AddContext("signing JWT-SVID");
  token += "." + Base64UrlEncode(*signature);
  return JwtSvid{.token = std::move(token),
                 .spiffe_id = params.spiffe_id,
                 .audience = params.audience,
                 .expires_at = FromUnixSeconds(exp),
                 .issued_at = FromUnixSeconds(iat)};
}

Result<std::string> UnverifiedJwtClaims(std::string_view token) {
  const size_t first = token.find('.');
  const size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos) return InvalidArgumentError("token is not a JWS compact serialization");
  SIGIL_ASSIGN_OR_RETURN(Bytes payload, Base64UrlDecode(token.substr(first + 1, second - first - 1)));
  return std::string(payload.begin(), payload.end());
}

Result<std::string> UnverifiedJwtKeyId(std::string_view token) {
  const size_t dot = token.find('.');
  if (dot == std::string_view::npos) return Malformed("token is not a JWS compact serialization");
  SIGIL_ASSIGN_OR_RETURN(Json header, DecodeJsonPart(token.substr(0, dot), "header"));
  const auto kid = header.find("kid");
  if (kid == header.end() || !kid->is_string()) return Malformed("header has no \"kid\" string");
  return kid->get<std::string>();
}

Result<JwtSvid> ValidateJwtSvid(std::string_view token, const JwtBundle& bundle,
                                std::string_view audience, TimePoint now) {
  if (token.size() > kMaxJwtSvidLength) {
    return Malformed("token is " + std::to_string(token.size()) + " bytes, more than " +
                     std::to_string(kMaxJwtSvidLength));
  }
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Malformed("a JWS compact token has exactly three parts separated by '.'");
  }
  const std::string_view signed_part = token.substr(0, dot2);
  SIGIL_ASSIGN_OR_RETURN(Json header, DecodeJsonPart(token.substr(0, dot1), "header"));
  SIGIL_ASSIGN_OR_RETURN(Json claims,
                         DecodeJsonPart(token.substr(dot1 + 1, dot2 - dot1 - 1), "payload"));
  auto signature = Base64UrlDecode(token.substr(dot2 + 1));
  if (!signature.ok()) return Malformed("signature is not base64url: " + signature.status().message());

  SIGIL_RETURN_IF_ERROR(VerifyJws(header, signed_part, std::move(*signature), bundle, now));

  // Claims count only now that the signature vouches for them.
  auto sub_it = claims.find("sub");
  if (sub_it == claims.end() || !sub_it->is_string()) return Malformed("claim \"sub\" is missing");
  auto id = SpiffeId::Parse(sub_it->get<std::string>());
  if (!id.ok()) return Untrusted("claim \"sub\" is not a SPIFFE ID: " + id.status().message());
  if (!id->MemberOf(bundle.trust_domain)) {
    return Untrusted("subject " + id->str() + " is not in trust domain " +
                     bundle.trust_domain.name());
  }
  SIGIL_ASSIGN_OR_RETURN(int64_t exp, IntClaim(claims, "exp", /*required=*/true));
  SIGIL_ASSIGN_OR_RETURN(int64_t iat, IntClaim(claims, "iat", /*required=*/false));
  SIGIL_ASSIGN_OR_RETURN(int64_t nbf, IntClaim(claims, "nbf", /*required=*/false));
  const int64_t now_s = UnixSeconds(now);
  if (exp <= now_s) {
    return Untrusted("token expired " + std::to_string(now_s - exp) + "s ago");
  }
  if (nbf > now_s) return Untrusted("token is not valid before its \"nbf\"");

  SIGIL_ASSIGN_OR_RETURN(std::vector<std::string> audiences, Audiences(claims));
  if (std::find(audiences.begin(), audiences.end(), audience) == audiences.end()) {
    return Untrusted("audience \"" + std::string(audience) + "\" is not among the token's audiences");
  }
  return JwtSvid{.token = std::string(token),
                 .spiffe_id = std::move(*id),
                 .audience = std::move(audiences),
                 .expires_at = FromUnixSeconds(exp),
                 .issued_at = FromUnixSeconds(iat)};
}

}  // namespace sigil
