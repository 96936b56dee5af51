#include "hw/locked_key_store.h"

#include "core/event_loop_check.h"

namespace sigil::hw {

Result<std::shared_ptr<Signer>> LockedKeyStore::FindKey(std::string_view label) {
  AssertNotOnEventLoop("key store FindKey");
  SIGIL_RETURN_IF_ERROR(ValidateKeyLabel(label));
  std::lock_guard lock(management_mutex());
  return FindLocked(std::string(label));
}

Result<std::shared_ptr<Signer>> LockedKeyStore::CreateKey(std::string_view label, KeyType type) {
  AssertNotOnEventLoop("key store CreateKey");
  SIGIL_RETURN_IF_ERROR(ValidateKeyLabel(label));
  std::lock_guard lock(management_mutex());
  const std::string name(label);
  auto existing = FindLocked(name);
  if (existing.ok()) return LabelTaken(name);
  if (existing.status().code() != Code::kNotFound) return existing.status();
  return CreateLocked(name, type);
}

Status LockedKeyStore::DeleteKey(std::string_view label) {
  AssertNotOnEventLoop("key store DeleteKey");
  SIGIL_RETURN_IF_ERROR(ValidateKeyLabel(label));
  std::lock_guard lock(management_mutex());
  return DeleteLocked(std::string(label));
}

}  // namespace sigil::hw
