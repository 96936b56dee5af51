#include "tests/fuzz/fuzz_support.h"

#include "hw/soft_key_store.h"

namespace sigil::fuzz {
namespace {

// Not a secret: it signs only fuzz inputs.
constexpr std::string_view kJwtKeyPem = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYwz1yLUhyhaJKaJJ
PB4pGQoP/giZvGuJphWgPJoqsyGhRANCAATfsMB7CqsQVszx6JcsvzlDP+Dao76g
ftzfOoMeIOyfQ0X1909CSMNTPqS9+9WCACp3IkkRgbbHHUcIwtWxOR8g
-----END PRIVATE KEY-----
)";

}  // namespace

std::shared_ptr<Signer> JwtSigner() {
  static const std::shared_ptr<Signer> signer = [] {
    auto key = PrivateKeyFromPem(kJwtKeyPem);
    FUZZ_CHECK(key.ok());
    auto made = hw::MakeSoftSigner(std::move(*key));
    FUZZ_CHECK(made.ok());
    return *made;
  }();
  return signer;
}

}  // namespace sigil::fuzz
