// The PKCS#11 key store's link to its Cryptoki module: the module loaded once per process, the
// token found by label or serial, objects searched and read, and return values turned into
// Status. Used by pkcs11_key_store.cc.
#pragma once

#include <p11-kit/pkcs11.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "hw/key_store.h"

namespace sigil::hw::pkcs11 {

// A loaded module, initialised once per process and shared by every store that names it:
// C_Finalize from one store would otherwise pull the module from under another.
class Module {
 public:
  static Result<std::shared_ptr<Module>> Load(const std::filesystem::path& path);

  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  CK_FUNCTION_LIST* f() const { return functions_; }

  // Every Cryptoki call holds this shared, ReinitializeExclusive alone: C_Finalize while
  // another thread is inside the module is undefined behaviour (PKCS#11 2.40, section 5.4).
  std::shared_mutex& calls() { return calls_; }

  // How many times the module was reinitialised. Session and object handles of an earlier
  // epoch are dead and their numbers may be reused, so they are never used or closed again.
  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }

  // C_Finalize and C_Initialize, with calls() held exclusively: the one way to make a module
  // drop its sessions and read its objects afresh. (SoftHSM2 that failed to read its object
  // files under EMFILE otherwise keeps the partial set it read, for good.) When C_Initialize
  // fails the module stays finalised until a later call succeeds.
  Status ReinitializeExclusive();

  // False after a reinitialisation whose C_Initialize failed.
  bool initialized() const { return initialized_.load(std::memory_order_acquire); }

 private:
  Module(void* handle, CK_FUNCTION_LIST_PTR functions, bool finalize)
      : handle_(handle), functions_(functions), finalize_(finalize) {}
  void* handle_;
  CK_FUNCTION_LIST_PTR functions_;
  bool finalize_;
  std::shared_mutex calls_;
  std::atomic<uint64_t> epoch_{0};
  std::atomic<bool> initialized_{true};
};

// Return values that mean the token forgot this process's session, login or object handles
// rather than refused the request: a token reset or re-plugged, or SoftHSM2 failing to reread
// its object files (it does under EMFILE) and loading them again under new handles. They are
// healed by opening a new session, logging in again and finding the key by its label.
bool MeansLostState(CK_RV rv);

// A Status naming `what` and the return value: Unavailable for lost state (and no free session),
// PermissionDenied for a wrong or locked PIN, Internal otherwise.
Status CkError(CK_RV rv, const std::string& what);

// The user PIN, from exactly one of the config's pin_file and pin_env.
Result<std::string> ReadPin(const KeyStoreConfig& config);

// The slot of the initialised token the config names by label, serial or both; its label in
// `*label`.
Result<CK_SLOT_ID> FindSlot(CK_FUNCTION_LIST* f, const KeyStoreConfig& config, std::string* label);

// One attribute of an object; `name` says which in an error.
Result<Bytes> GetAttribute(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                           CK_ATTRIBUTE_TYPE type, const char* name);

// Objects of `object_class` whose CKA_LABEL is `label`.
Result<std::vector<CK_OBJECT_HANDLE>> FindObjects(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session,
                                                  CK_OBJECT_CLASS object_class,
                                                  const std::string& label);

// The DER OID of an EC key type's curve (CKA_EC_PARAMS), and back.
Bytes CurveOid(KeyType type);
Result<KeyType> CurveFromOid(std::span<const uint8_t> der);

// CKA_EC_POINT is a DER OCTET STRING around the point (PKCS#11 2.40); some modules give the
// bare point.
std::span<const uint8_t> UnwrapEcPoint(std::span<const uint8_t> value);

}  // namespace sigil::hw::pkcs11
