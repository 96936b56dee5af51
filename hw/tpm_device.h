// Internal to hw/: one connection to a TPM per TCTI string, shared by everything in the process
// that talks to that TPM (the TPM key store's signers, the DevID attestation). A TPM runs one
// command at a time and swtpm serves a single client, so every command goes through the one
// TpmDevice under its lock.
//
// The device keeps the owner hierarchy's storage primary key (the SRK: ECC P-256, AES-128-CFB,
// the TCG template that tpm2-tools and tpm2-openssl also recreate) loaded, and at most
// kMaxLoadedKeys signing keys beside it, because a TPM without a resource manager holds only
// three objects.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "core/openssl_util.h"
#include "core/signer.h"
#include "core/status.h"
#include "hw/heal_backoff.h"
#include "hw/tss2_library.h"

namespace sigil::hw {

// A TSS return code as a Status: Unavailable when the TPM cannot be reached, PermissionDenied
// for a wrong auth value, Internal otherwise; the message is `what` and the decoded code.
Status TpmError(TSS2_RC rc, const std::string& what);

// The auth value on the first line of `path`; empty when `path` is. InvalidArgument naming
// `what` ("tpm: auth_file") when the file cannot be read or the value is too long.
Result<TPM2B_AUTH> ReadAuthFile(const std::filesystem::path& path, std::string_view what);

template <typename T>
struct EsysDeleter {
  void operator()(T* p) const { Tss2().Esys_Free(p); }
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysDeleter<T>>;

TPM2B_PUBLIC StoragePrimaryTemplate();
TPM2B_PUBLIC SigningKeyTemplate(KeyType type, bool has_auth);

// A key made by TPM2_Create under the SRK: the two halves it returned. On disk as the TPM
// marshals them, private half first.
struct KeyBlob {
  TPM2B_PRIVATE private_part{};
  TPM2B_PUBLIC public_part{};
};
Bytes MarshalBlob(const KeyBlob& blob);
Result<KeyBlob> UnmarshalBlob(std::span<const uint8_t> bytes, const std::string& path);

class TpmDevice {
 public:
  static constexpr size_t kMaxLoadedKeys = 2;

  // The open device for `tcti_config`, or a new connection when none is open.
  static Result<std::shared_ptr<TpmDevice>> Open(const std::string& tcti_config);
  ~TpmDevice();

  Result<KeyBlob> CreateKey(KeyType type, const TPM2B_AUTH& auth);
  // Signs with the key `id`, loading its blob first when it is not loaded.
  Result<TPMT_SIGNATURE> Sign(uint64_t id, const KeyBlob& blob, const TPM2B_AUTH& auth,
                              const TPM2B_DIGEST& digest, const TPMT_SIG_SCHEME& scheme);
  // Checks that this TPM can load the blob (it was made under this TPM's SRK).
  Status CheckLoads(uint64_t id, const KeyBlob& blob, const TPM2B_AUTH& auth);
  void Unload(uint64_t id);
  uint64_t NextKeyId() { return next_key_id_.fetch_add(1); }

  // Runs `work` alone on the TPM with every signing key unloaded, so that it has the object
  // slots beside the SRK to itself. `work` must flush every object and session it creates.
  Status RunExclusive(const std::function<Status(ESYS_CONTEXT* esys, ESYS_TR srk)>& work);

 private:
  explicit TpmDevice(std::string tcti_config) : tcti_config_(tcti_config), backoff_("TPM on TCTI '" + tcti_config + "'") {}
  // Connects (TCTI and ESAPI), starts the TPM when it was reset, and creates the storage primary.
  Status ConnectLocked();
  // After `lost` (Unavailable: the connection broke, or the TPM restarted and forgot its
  // objects), drops the connection and what was loaded through it and connects again, within
  // the back-off. Key blobs load again when next used.
  Status ReconnectLocked(const Status& lost);
  // Runs `command` (which needs the ESAPI context), reconnecting once if it finds the TPM lost.
  template <typename Command>
  auto WithTpmLocked(Command command) -> decltype(command());
  Result<KeyBlob> CreateKeyLocked(KeyType type, const TPM2B_AUTH& auth);
  Result<TPMT_SIGNATURE> SignLocked(ESYS_TR handle, const TPM2B_DIGEST& digest, const TPMT_SIG_SCHEME& scheme);
  Status CreatePrimary();
  void EvictLoadedKeysDownTo(size_t count);
  Result<ESYS_TR> LoadedHandle(uint64_t id, const KeyBlob& blob, const TPM2B_AUTH& auth);

  const std::string tcti_config_;
  std::mutex mutex_;
  HealBackoff backoff_;  // guarded by mutex_
  TSS2_TCTI_CONTEXT* tcti_ = nullptr;
  ESYS_CONTEXT* esys_ = nullptr;
  ESYS_TR primary_ = ESYS_TR_NONE;
  std::map<uint64_t, ESYS_TR> loaded_;
  std::list<uint64_t> lru_;
  std::atomic<uint64_t> next_key_id_{1};
};

}  // namespace sigil::hw
