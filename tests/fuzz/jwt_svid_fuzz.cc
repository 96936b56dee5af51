// JWT-SVIDs as a workload hands them to ValidateJWTSVID. The first byte picks how the rest is
// read: a whole token checked as it is (the path of every forged or garbled token), or a
// header and a claims document, one per line, that the target signs with the bundle's key
// first, so that the claim checks behind the signature are fuzzed too.
#include <nlohmann/json.hpp>

#include "core/base64url.h"
#include "core/jwt_svid.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sigil;

namespace {

const JwtBundle& Bundle() {
  static const JwtBundle bundle = [] {
    JwtBundle b(*TrustDomain::Parse(fuzz::kTrustDomain));
    b.authorities.emplace(std::string(fuzz::kJwtKeyId), JwtAuthority(UpRef(fuzz::JwtSigner()->public_key())));
    return b;
  }();
  return bundle;
}

std::string Signed(std::string_view header, std::string_view claims) {
  std::string token = Base64UrlEncode(AsBytes(header)) + "." + Base64UrlEncode(AsBytes(claims));
  auto signature = fuzz::JwtSigner()->SignMessageJws(SignatureScheme::kES256, AsBytes(token));
  FUZZ_CHECK(signature.ok());
  return token + "." + Base64UrlEncode(*signature);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest = fuzz::AsText(data + 1, size - 1);
  std::string token(rest);
  if (data[0] % 2 == 1) {
    const size_t newline = rest.find('\n');
    if (newline == std::string_view::npos) return 0;
    token = Signed(rest.substr(0, newline), rest.substr(newline + 1));
  }
  const std::string_view audience = "fuzz-audience";
  auto svid = ValidateJwtSvid(token, Bundle(), audience, fuzz::kNow);
  if (!svid.ok()) {
    FUZZ_CHECK(svid.status().code() == Code::kInvalidArgument || svid.status().code() == Code::kUnauthenticated);
    return 0;
  }
  // An accepted token is for this trust domain and audience and has not expired.
  FUZZ_CHECK(svid->spiffe_id.MemberOf(Bundle().trust_domain));
  FUZZ_CHECK(std::find(svid->audience.begin(), svid->audience.end(), audience) != svid->audience.end());
  FUZZ_CHECK(svid->expires_at > fuzz::kNow);
  return 0;
}
