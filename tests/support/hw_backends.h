// The real key stores tests sign with: one SoftHSM2 installation with a token, and one
// swtpm, shared by every test in the binary (SOFTHSM2_CONF is process-wide; swtpm serves one
// client at a time).
#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "core/signer.h"
#include "tests/support/process.h"
#include "tests/support/softhsm.h"
#include "tests/support/swtpm.h"

namespace sigil::hw {

struct HwBackends {
  std::unique_ptr<sigil::testing::TempDir> dir;
  std::unique_ptr<sigil::testing::SoftHsm> hsm;
  sigil::testing::SoftHsmTokenInfo ca_token;
  sigil::testing::SoftHsmTokenInfo replica_ca_token;  // a second serverd's, on the same journal
  std::unique_ptr<sigil::testing::Swtpm> tpm;
};

// Started before the first test, stopped after the last.
HwBackends* Backends();

// OpenSSL's verdict on `signature` (DER for ECDSA) over `message`.
bool Verify(EVP_PKEY* public_key, SignatureScheme scheme, std::span<const uint8_t> message,
            std::span<const uint8_t> signature);

inline std::span<const uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

}  // namespace sigil::hw
