// The soft key store: OpenSSL keys in memory or in PKCS#8 PEM files (mode 0600, folder 0700).
// For development, tests and agents without hardware; a CA key in production belongs in a
// token or a TPM.
#pragma once

#include <memory>

#include "core/openssl_util.h"
#include "hw/key_store.h"

namespace sigil::hw {

Result<std::unique_ptr<KeyStore>> OpenSoftKeyStore(const KeyStoreConfig& config);

// A Signer over a private key held in this process (also the delegated CA's in-memory key).
Result<std::shared_ptr<Signer>> MakeSoftSigner(EvpPkeyPtr private_key);

// A fresh private key of `type`.
Result<EvpPkeyPtr> GenerateSoftKey(KeyType type);

}  // namespace sigil::hw
