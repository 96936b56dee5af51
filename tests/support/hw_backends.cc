#include "tests/support/hw_backends.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

namespace sigil::hw {

namespace {

HwBackends backends;

class BackendsEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    backends.dir = std::make_unique<sigil::testing::TempDir>("sigil-hw-test");
    auto hsm = sigil::testing::SoftHsm::Create();
    ASSERT_TRUE(hsm.ok()) << hsm.status().ToString();
    backends.hsm = std::move(*hsm);
    auto token = backends.hsm->InitToken("sigil-ca");
    ASSERT_TRUE(token.ok()) << token.status().ToString();
    backends.ca_token = *token;
    // Made before any key store opens the module: SoftHSM2 lists its tokens once, at C_Initialize.
    auto replica_token = backends.hsm->InitToken("sigil-ca-replica-b");
    ASSERT_TRUE(replica_token.ok()) << replica_token.status().ToString();
    backends.replica_ca_token = *replica_token;
    auto tpm = sigil::testing::Swtpm::Start(*backends.dir / "tpm-state", *backends.dir / "logs");
    ASSERT_TRUE(tpm.ok()) << tpm.status().ToString();
    backends.tpm = std::move(*tpm);
  }
  void TearDown() override {
    backends.tpm.reset();
    backends.hsm.reset();
    backends.dir.reset();
  }
};

[[maybe_unused]] auto* const environment =
    ::testing::AddGlobalTestEnvironment(new BackendsEnvironment);

}  // namespace

HwBackends* Backends() { return &backends; }

bool Verify(EVP_PKEY* public_key, SignatureScheme scheme, std::span<const uint8_t> message,
            std::span<const uint8_t> signature) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pkey_ctx = nullptr;
  if (EVP_DigestVerifyInit(ctx.get(), &pkey_ctx, SchemeDigest(scheme), nullptr, public_key) != 1) {
    return false;
  }
  if (scheme == SignatureScheme::kRS256) EVP_PKEY_CTX_set_rsa_padding(pkey_ctx, RSA_PKCS1_PADDING);
  const bool ok = EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                                   message.size()) == 1;
  ClearOpenSSLErrors();
  return ok;
}

}  // namespace sigil::hw
