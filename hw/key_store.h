// Key stores: where private keys live and how Sigil asks them to sign.
//
// One interface over three backends, chosen by name from config or from a URI:
//   soft    OpenSSL keys in memory, or PKCS#8 files (mode 0600) in a folder
//   pkcs11  any Cryptoki module; keys generated inside the token, never extractable
//   tpm     a TPM 2.0 through tpm2-tss; keys under the owner hierarchy's storage primary,
//           kept as TPM-wrapped blobs in a data folder so a restart signs with the same key
//
// URIs (values percent-decoded):
//   soft:                    keys in memory, gone when the store closes
//   soft:/var/lib/sigil/keys keys in that folder
//   pkcs11:token=sigil;serial=...?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/p
//                            RFC 7512 attributes; pin-source=env:NAME reads an environment
//                            variable. A PIN never travels in the URI itself.
//   tpm:swtpm:host=127.0.0.1,port=2321?data-dir=/var/lib/sigil/tpm&auth-file=/p
//                            everything up to '?' is the TCTI string (device:/dev/tpmrm0, ...)
//
// Thread safety: a KeyStore and the Signers it returns may be used from any number of threads
// at once. PKCS#11 stores keep a pool of sessions, one per concurrent signer; a TPM runs one
// command at a time, so its signers wait their turn. Signing blocks: call it from a worker
// thread, never from an event-loop thread.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/signer.h"
#include "core/status.h"

namespace sigil::hw {

enum class KeyStoreKind { kSoft, kPkcs11, kTpm };

std::string_view KeyStoreKindName(KeyStoreKind kind);  // "soft", "pkcs11", "tpm"
Result<KeyStoreKind> ParseKeyStoreKind(std::string_view name);

struct KeyStoreConfig {
  KeyStoreKind kind = KeyStoreKind::kSoft;

  // soft: empty keeps keys in memory.
  std::filesystem::path key_dir;

  // pkcs11: the module, the token by label or serial (at least one), and where the user PIN
  // comes from (exactly one of the two).
  std::filesystem::path module_path;
  std::string token_label;
  std::string token_serial;
  std::filesystem::path pin_file;
  std::string pin_env;

  // tpm: the TCTI, the folder for key blobs, and an optional file holding the keys' auth value.
  std::string tcti;
  std::filesystem::path data_dir;
  std::filesystem::path auth_file;
};

// InvalidArgument naming the attribute that is unknown, missing or malformed.
Result<KeyStoreConfig> ParseKeyStoreUri(std::string_view uri);

// A `key_store:` config section, either `uri: <as above>` or the fields by name (kind,
// key_dir, module_path, token_label, token_serial, pin_file, pin_env, tcti, data_dir,
// auth_file). Problems are recorded in the section's document.
void ReadKeyStoreConfig(ConfigSection section, KeyStoreConfig& config);

class KeyStore {
 public:
  virtual ~KeyStore() = default;

  virtual KeyStoreKind kind() const = 0;

  // The key labelled `label`; NotFound naming the label when there is none.
  virtual Result<std::shared_ptr<Signer>> FindKey(std::string_view label) = 0;

  // A new key of `type` under `label`; AlreadyExists when the label is taken.
  virtual Result<std::shared_ptr<Signer>> CreateKey(std::string_view label, KeyType type) = 0;

  // Removes the key; NotFound when there is none. Signers already handed out stop working.
  virtual Status DeleteKey(std::string_view label) = 0;

  // FindKey, or CreateKey when the label is free. An existing key of another type is an error
  // (FailedPrecondition), never silently replaced.
  Result<std::shared_ptr<Signer>> FindOrCreateKey(std::string_view label, KeyType type);
};

// Opens the backend `config` names; the error says which setting or device failed.
Result<std::unique_ptr<KeyStore>> OpenKeyStore(const KeyStoreConfig& config);
Result<std::unique_ptr<KeyStore>> OpenKeyStore(std::string_view uri);

// Labels become file names and token attributes: 1 to 64 of [A-Za-z0-9._-], not starting
// with '.'. InvalidArgument naming the offending character otherwise.
Status ValidateKeyLabel(std::string_view label);

}  // namespace sigil::hw
