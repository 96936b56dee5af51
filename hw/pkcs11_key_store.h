// The PKCS#11 key store: keys generated inside a Cryptoki token and never let out of it
// (CKA_SENSITIVE true, CKA_EXTRACTABLE false), found again by label after a restart.
// Any module path works; tests use SoftHSM2.
#pragma once

#include <memory>

#include "hw/key_store.h"

namespace sigil::hw {

Result<std::unique_ptr<KeyStore>> OpenPkcs11KeyStore(const KeyStoreConfig& config);

}  // namespace sigil::hw
