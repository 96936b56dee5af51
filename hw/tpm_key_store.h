// The TPM key store: signing keys created by a TPM 2.0 under the owner hierarchy's storage
// primary key, kept as TPM-wrapped blobs (<data_dir>/<label>.tpmkey, mode 0600) that only
// that TPM can load, so a restart signs with the same key and the private half never leaves
// the chip. Reached through a TCTI string: swtpm:host=127.0.0.1,port=N or device:/dev/tpmrm0.
//
// A TPM runs one command at a time and swtpm serves one client: every store shares one
// connection per TCTI and queues commands on it. At most two keys stay loaded next to the
// primary (a TPM without a resource manager holds three objects); others are loaded again
// when they sign.
#pragma once

#include <memory>

#include "hw/key_store.h"

namespace sigil::hw {

Result<std::unique_ptr<KeyStore>> OpenTpmKeyStore(const KeyStoreConfig& config);

}  // namespace sigil::hw
