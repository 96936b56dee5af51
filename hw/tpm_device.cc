#include "hw/tpm_device.h"

#include <cstring>
#include <fstream>

namespace sigil::hw {

Status TpmError(TSS2_RC rc, const std::string& what) {
  Code code = Code::kInternal;
  const TSS2_RC base = rc & ~TSS2_RC_LAYER_MASK;
  if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER || base == TSS2_BASE_RC_IO_ERROR ||
      base == TSS2_BASE_RC_NO_CONNECTION) {
    code = Code::kUnavailable;
  }
  // A TPM that was reset (not started yet), or that no longer holds an object this process
  // loaded (it restarted under a resource manager): the connection needs making again.
  if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER &&
      ((rc & 0xfff) == TPM2_RC_INITIALIZE || ((rc & 0xfff) >= TPM2_RC_REFERENCE_H0 && (rc & 0xfff) <= TPM2_RC_REFERENCE_H6))) {
    code = Code::kUnavailable;
  }
  // Format-one response codes carry the failing handle or session in bits 8-11; 0xbf keeps
  // the error itself.
  const TSS2_RC tpm_code = rc & 0xfff;
  if ((tpm_code & TPM2_RC_FMT1) != 0 &&
      ((tpm_code & 0xbf) == TPM2_RC_AUTH_FAIL || (tpm_code & 0xbf) == TPM2_RC_BAD_AUTH)) {
    code = Code::kPermissionDenied;
  }
  return Status(code, what + ": " + Tss2().Tss2_RC_Decode(rc));
}

Result<TPM2B_AUTH> ReadAuthFile(const std::filesystem::path& path, std::string_view what) {
  TPM2B_AUTH auth{};
  if (path.empty()) return auth;
  std::ifstream in(path);
  if (!in) return InvalidArgumentError(std::string(what) + ": cannot read " + path.string());
  std::string value;
  std::getline(in, value);
  if (value.size() > sizeof(auth.buffer)) {
    return InvalidArgumentError(std::string(what) + ": the auth value in " + path.string() +
                                " is longer than " + std::to_string(sizeof(auth.buffer)) +
                                " bytes");
  }
  auth.size = static_cast<UINT16>(value.size());
  std::memcpy(auth.buffer, value.data(), value.size());
  return auth;
}

TPM2B_PUBLIC StoragePrimaryTemplate() {
  TPM2B_PUBLIC in{};
  TPMT_PUBLIC& area = in.publicArea;
  area.type = TPM2_ALG_ECC;
  area.nameAlg = TPM2_ALG_SHA256;
  area.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                          TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  area.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
  area.parameters.eccDetail.symmetric.keyBits.aes = 128;
  area.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
  area.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
  area.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  area.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  return in;
}

TPM2B_PUBLIC SigningKeyTemplate(KeyType type, bool has_auth) {
  TPM2B_PUBLIC in{};
  TPMT_PUBLIC& area = in.publicArea;
  area.nameAlg = TPM2_ALG_SHA256;
  area.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                          TPMA_OBJECT_SIGN_ENCRYPT;
  // Without an auth value there is nothing to guess, so dictionary-attack lockout only hurts.
  if (!has_auth) area.objectAttributes |= TPMA_OBJECT_NODA;
  if (type == KeyType::kRsa2048) {
    area.type = TPM2_ALG_RSA;
    area.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
    area.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;  // chosen per signature
    area.parameters.rsaDetail.keyBits = 2048;
  } else {
    area.type = TPM2_ALG_ECC;
    area.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    area.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
    area.parameters.eccDetail.curveID =
        type == KeyType::kEcP384 ? TPM2_ECC_NIST_P384 : TPM2_ECC_NIST_P256;
    area.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  }
  return in;
}

Bytes MarshalBlob(const KeyBlob& blob) {
  Bytes out(sizeof(TPM2B_PRIVATE) + sizeof(TPM2B_PUBLIC));
  size_t offset = 0;
  Tss2().Tss2_MU_TPM2B_PRIVATE_Marshal(&blob.private_part, out.data(), out.size(), &offset);
  Tss2().Tss2_MU_TPM2B_PUBLIC_Marshal(&blob.public_part, out.data(), out.size(), &offset);
  out.resize(offset);
  return out;
}

Result<KeyBlob> UnmarshalBlob(std::span<const uint8_t> bytes, const std::string& path) {
  KeyBlob blob;
  size_t offset = 0;
  if (Tss2().Tss2_MU_TPM2B_PRIVATE_Unmarshal(bytes.data(), bytes.size(), &offset, &blob.private_part) !=
          0 ||
      Tss2().Tss2_MU_TPM2B_PUBLIC_Unmarshal(bytes.data(), bytes.size(), &offset, &blob.public_part) != 0 ||
      offset != bytes.size()) {
    return Status(Code::kDataLoss, "TPM key file " + path + " is damaged");
  }
  return blob;
}

Result<std::shared_ptr<TpmDevice>> TpmDevice::Open(const std::string& tcti_config) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<TpmDevice>> open;
  std::lock_guard lock(mutex);
  if (auto existing = open[tcti_config].lock()) return existing;
  SIGIL_RETURN_IF_ERROR(LoadTss2().status());
  auto device = std::shared_ptr<TpmDevice>(new TpmDevice(tcti_config));
  {
    std::lock_guard device_lock(device->mutex_);
    SIGIL_RETURN_IF_ERROR(device->ConnectLocked());
  }
  open[tcti_config] = device;
  return device;
}

Status TpmDevice::ConnectLocked() {
  Status connected = [&]() -> Status {
    TSS2_RC rc = Tss2().Tss2_TctiLdr_Initialize(tcti_config_.c_str(), &tcti_);
    if (rc != TSS2_RC_SUCCESS) return TpmError(rc, "cannot reach the TPM through TCTI '" + tcti_config_ + "'");
    rc = Tss2().Esys_Initialize(&esys_, tcti_, nullptr);
    if (rc != TSS2_RC_SUCCESS) return TpmError(rc, "starting ESAPI on TCTI '" + tcti_config_ + "'");
    rc = Tss2().Esys_Startup(esys_, TPM2_SU_CLEAR);
    if (rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE) {
      return TpmError(rc, "starting the TPM on TCTI '" + tcti_config_ + "'");
    }
    return CreatePrimary();
  }();
  if (!connected.ok()) {
    if (esys_ != nullptr) Tss2().Esys_Finalize(&esys_);
    if (tcti_ != nullptr) Tss2().Tss2_TctiLdr_Finalize(&tcti_);
    esys_ = nullptr;
    tcti_ = nullptr;
  }
  return connected;
}

Status TpmDevice::ReconnectLocked(const Status& lost) {
  SIGIL_RETURN_IF_ERROR(backoff_.MayTry(lost));
  if (esys_ != nullptr) {
    // A TPM that is still there keeps what the old connection loaded unless a resource manager
    // flushes it; this frees the slots when it can, and fails at once when the TPM is gone.
    for (auto& [id, handle] : loaded_) Tss2().Esys_FlushContext(esys_, handle);
    if (primary_ != ESYS_TR_NONE) Tss2().Esys_FlushContext(esys_, primary_);
    Tss2().Esys_Finalize(&esys_);
  }
  if (tcti_ != nullptr) Tss2().Tss2_TctiLdr_Finalize(&tcti_);
  esys_ = nullptr;
  tcti_ = nullptr;
  primary_ = ESYS_TR_NONE;
  loaded_.clear();
  lru_.clear();
  return backoff_.Attempted(lost, ConnectLocked());
}

template <typename Command>
auto TpmDevice::WithTpmLocked(Command command) -> decltype(command()) {
  for (bool reconnected = false;; reconnected = true) {
    Status lost;
    if (esys_ == nullptr) {
      lost = UnavailableError("not connected to the TPM on TCTI '" + tcti_config_ + "'");
    } else {
      auto result = command();
      if (StatusOf(result).code() != Code::kUnavailable || reconnected) return result;
      lost = StatusOf(result);
    }
    if (reconnected) return lost;
    SIGIL_RETURN_IF_ERROR(ReconnectLocked(lost));
  }
}

TpmDevice::~TpmDevice() {
  if (esys_ != nullptr) {
    for (auto& [id, handle] : loaded_) Tss2().Esys_FlushContext(esys_, handle);
    if (primary_ != ESYS_TR_NONE) Tss2().Esys_FlushContext(esys_, primary_);
    Tss2().Esys_Finalize(&esys_);
  }
  if (tcti_ != nullptr) Tss2().Tss2_TctiLdr_Finalize(&tcti_);
}

Result<KeyBlob> TpmDevice::CreateKey(KeyType type, const TPM2B_AUTH& auth) {
  std::lock_guard lock(mutex_);
  return WithTpmLocked([&] { return CreateKeyLocked(type, auth); });
}

Result<KeyBlob> TpmDevice::CreateKeyLocked(KeyType type, const TPM2B_AUTH& auth) {
  // TPM2_Create needs a free object slot of its own while it works.
  EvictLoadedKeysDownTo(kMaxLoadedKeys - 1);
  TPM2B_SENSITIVE_CREATE sensitive{};
  sensitive.sensitive.userAuth = auth;
  const TPM2B_PUBLIC in_public = SigningKeyTemplate(type, auth.size > 0);
  const TPM2B_DATA outside{};
  const TPML_PCR_SELECTION pcrs{};
  TPM2B_PRIVATE* out_private = nullptr;
  TPM2B_PUBLIC* out_public = nullptr;
  TPM2B_CREATION_DATA* creation_data = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* creation_ticket = nullptr;
  const TSS2_RC rc = Tss2().Esys_Create(esys_, primary_, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                 &sensitive, &in_public, &outside, &pcrs, &out_private, &out_public,
                                 &creation_data, &creation_hash, &creation_ticket);
  EsysPtr<TPM2B_PRIVATE> p1(out_private);
  EsysPtr<TPM2B_PUBLIC> p2(out_public);
  EsysPtr<TPM2B_CREATION_DATA> p3(creation_data);
  EsysPtr<TPM2B_DIGEST> p4(creation_hash);
  EsysPtr<TPMT_TK_CREATION> p5(creation_ticket);
  if (rc != TSS2_RC_SUCCESS)
    return TpmError(rc, "creating a " + std::string(KeyTypeName(type)) + " key in the TPM");
  return KeyBlob{*out_private, *out_public};
}

Result<TPMT_SIGNATURE> TpmDevice::Sign(uint64_t id, const KeyBlob& blob, const TPM2B_AUTH& auth,
                                       const TPM2B_DIGEST& digest, const TPMT_SIG_SCHEME& scheme) {
  std::lock_guard lock(mutex_);
  return WithTpmLocked([&]() -> Result<TPMT_SIGNATURE> {
    SIGIL_ASSIGN_OR_RETURN(ESYS_TR handle, LoadedHandle(id, blob, auth));
    return SignLocked(handle, digest, scheme);
  });
}

Result<TPMT_SIGNATURE> TpmDevice::SignLocked(ESYS_TR handle, const TPM2B_DIGEST& digest,
                                             const TPMT_SIG_SCHEME& scheme) {
  TPMT_TK_HASHCHECK validation{};
  validation.tag = TPM2_ST_HASHCHECK;
  validation.hierarchy = TPM2_RH_NULL;
  TPMT_SIGNATURE* signature = nullptr;
  const TSS2_RC rc = Tss2().Esys_Sign(esys_, handle, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &digest,
                               &scheme, &validation, &signature);
  EsysPtr<TPMT_SIGNATURE> owned(signature);
  if (rc != TSS2_RC_SUCCESS) return TpmError(rc, "signing in the TPM");
  return *signature;
}

Status TpmDevice::CheckLoads(uint64_t id, const KeyBlob& blob, const TPM2B_AUTH& auth) {
  std::lock_guard lock(mutex_);
  return WithTpmLocked([&] { return LoadedHandle(id, blob, auth).status(); });
}

void TpmDevice::Unload(uint64_t id) {
  std::lock_guard lock(mutex_);
  if (auto it = loaded_.find(id); it != loaded_.end()) {
    if (esys_ != nullptr) Tss2().Esys_FlushContext(esys_, it->second);
    loaded_.erase(it);
    lru_.remove(id);
  }
}

Status TpmDevice::CreatePrimary() {
  const TPM2B_SENSITIVE_CREATE sensitive{};
  const TPM2B_PUBLIC in_public = StoragePrimaryTemplate();
  const TPM2B_DATA outside{};
  const TPML_PCR_SELECTION pcrs{};
  TPM2B_PUBLIC* out_public = nullptr;
  TPM2B_CREATION_DATA* creation_data = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* creation_ticket = nullptr;
  const TSS2_RC rc = Tss2().Esys_CreatePrimary(
      esys_, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &in_public,
      &outside, &pcrs, &primary_, &out_public, &creation_data, &creation_hash, &creation_ticket);
  Tss2().Esys_Free(out_public);
  Tss2().Esys_Free(creation_data);
  Tss2().Esys_Free(creation_hash);
  Tss2().Esys_Free(creation_ticket);
  if (rc != TSS2_RC_SUCCESS) {
    primary_ = ESYS_TR_NONE;
    return TpmError(rc, "creating the storage primary key under the owner hierarchy");
  }
  return Status::Ok();
}

void TpmDevice::EvictLoadedKeysDownTo(size_t count) {
  while (loaded_.size() > count) {
    const uint64_t oldest = lru_.front();
    lru_.pop_front();
    Tss2().Esys_FlushContext(esys_, loaded_[oldest]);
    loaded_.erase(oldest);
  }
}

Result<ESYS_TR> TpmDevice::LoadedHandle(uint64_t id, const KeyBlob& blob, const TPM2B_AUTH& auth) {
  if (auto it = loaded_.find(id); it != loaded_.end()) {
    lru_.remove(id);
    lru_.push_back(id);
    return it->second;
  }
  EvictLoadedKeysDownTo(kMaxLoadedKeys - 1);
  ESYS_TR handle = ESYS_TR_NONE;
  TSS2_RC rc = Tss2().Esys_Load(esys_, primary_, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                         &blob.private_part, &blob.public_part, &handle);
  if (rc != TSS2_RC_SUCCESS) {
    return TpmError(rc, "loading a key blob into the TPM (was it made by another TPM?)");
  }
  rc = Tss2().Esys_TR_SetAuth(esys_, handle, &auth);
  if (rc != TSS2_RC_SUCCESS) {
    Tss2().Esys_FlushContext(esys_, handle);
    return TpmError(rc, "setting the key's auth value");
  }
  loaded_[id] = handle;
  lru_.push_back(id);
  return handle;
}

Status TpmDevice::RunExclusive(const std::function<Status(ESYS_CONTEXT* esys, ESYS_TR srk)>& work) {
  std::lock_guard lock(mutex_);
  return WithTpmLocked([&] {
    EvictLoadedKeysDownTo(0);
    return work(esys_, primary_);
  });
}

}  // namespace sigil::hw
