// The entry points every key store backend shares: the label is checked, the backend's
// key-management lock is held for the whole call, and CreateKey refuses a label that is taken
// (a key found, never replaced). A backend fills in the steps, each called with the lock held.
//
// Thread safety: as KeyStore. The *Locked steps run one at a time per management_mutex().
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "hw/key_store.h"

namespace sigil::hw {

class LockedKeyStore : public KeyStore {
 public:
  Result<std::shared_ptr<Signer>> FindKey(std::string_view label) final;
  Result<std::shared_ptr<Signer>> CreateKey(std::string_view label, KeyType type) final;
  Status DeleteKey(std::string_view label) final;

 protected:
  // Serialises key management on the backend (a TPM's or a token's may be shared with more
  // than this store).
  virtual std::mutex& management_mutex() = 0;

  // NotFound naming the label when there is no such key; any other error is the backend's.
  virtual Result<std::shared_ptr<Signer>> FindLocked(const std::string& label) = 0;
  // Called only once FindLocked said NotFound.
  virtual Result<std::shared_ptr<Signer>> CreateLocked(const std::string& label, KeyType type) = 0;
  virtual Status DeleteLocked(const std::string& label) = 0;
  // AlreadyExists for a label that is taken, in the backend's words (where the key is).
  virtual Status LabelTaken(const std::string& label) const = 0;
};

}  // namespace sigil::hw
