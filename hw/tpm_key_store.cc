#include "hw/tpm_key_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <list>
#include <map>
#include <mutex>

#include "core/openssl_util.h"
#include "hw/secret_file.h"

namespace sigil::hw {

namespace {

Status TpmError(TSS2_RC rc, const std::string& what) {
  Code code = Code::kInternal;
  const TSS2_RC base = rc & ~TSS2_RC_LAYER_MASK;
  if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER || base == TSS2_BASE_RC_IO_ERROR ||
      base == TSS2_BASE_RC_NO_CONNECTION) {
    code = Code::kUnavailable;
  }
  // Format-one response codes carry the failing handle or session in bits 8-11; 0xbf keeps
  // the error itself.
  const TSS2_RC tpm_code = rc & 0xfff;
  if ((tpm_code & TPM2_RC_FMT1) != 0 &&
      ((tpm_code & 0xbf) == TPM2_RC_AUTH_FAIL || (tpm_code & 0xbf) == TPM2_RC_BAD_AUTH)) {
    code = Code::kPermissionDenied;
  }
  return Status(code, what + ": " + Tss2_RC_Decode(rc));
}

template <typename T>
struct EsysDeleter {
  void operator()(T* p) const { Esys_Free(p); }
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysDeleter<T>>;

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

Result<KeyType> KeyTypeOfTpmPublic(const TPMT_PUBLIC& area) {
  if (area.type == TPM2_ALG_RSA && area.parameters.rsaDetail.keyBits == 2048) return KeyType::kRsa2048;
  if (area.type == TPM2_ALG_ECC && area.parameters.eccDetail.curveID == TPM2_ECC_NIST_P256) return KeyType::kEcP256;
  if (area.type == TPM2_ALG_ECC && area.parameters.eccDetail.curveID == TPM2_ECC_NIST_P384) return KeyType::kEcP384;
  return InvalidArgumentError("TPM key is neither EC P-256, EC P-384 nor RSA-2048");
}

Result<EvpPkeyPtr> PublicKeyOfTpmPublic(const TPMT_PUBLIC& area) {
  SIGIL_ASSIGN_OR_RETURN(KeyType type, KeyTypeOfTpmPublic(area));
  if (type == KeyType::kRsa2048) {
    const uint32_t exponent = area.parameters.rsaDetail.exponent == 0 ? 65537 : area.parameters.rsaDetail.exponent;
    const uint8_t e[] = {static_cast<uint8_t>(exponent >> 24), static_cast<uint8_t>(exponent >> 16),
                         static_cast<uint8_t>(exponent >> 8), static_cast<uint8_t>(exponent)};
    return RsaPublicKeyFromParts({area.unique.rsa.buffer, area.unique.rsa.size}, e);
  }
  const size_t field = EcdsaFieldSize(type);
  const TPM2B_ECC_PARAMETER& x = area.unique.ecc.x;
  const TPM2B_ECC_PARAMETER& y = area.unique.ecc.y;
  if (x.size > field || y.size > field) return InvalidArgumentError("TPM EC point is longer than its curve");
  Bytes point(1 + 2 * field, 0);
  point[0] = 0x04;
  std::memcpy(point.data() + 1 + field - x.size, x.buffer, x.size);
  std::memcpy(point.data() + 1 + 2 * field - y.size, y.buffer, y.size);
  return EcPublicKeyFromPoint(type == KeyType::kEcP384 ? "P-384" : "P-256", point);
}

// What <label>.tpmkey holds: the two halves TPM2_Create returned, marshalled as the TPM does.
struct KeyBlob {
  TPM2B_PRIVATE private_part{};
  TPM2B_PUBLIC public_part{};
};

Bytes MarshalBlob(const KeyBlob& blob) {
  Bytes out(sizeof(TPM2B_PRIVATE) + sizeof(TPM2B_PUBLIC));
  size_t offset = 0;
  Tss2_MU_TPM2B_PRIVATE_Marshal(&blob.private_part, out.data(), out.size(), &offset);
  Tss2_MU_TPM2B_PUBLIC_Marshal(&blob.public_part, out.data(), out.size(), &offset);
  out.resize(offset);
  return out;
}

Result<KeyBlob> UnmarshalBlob(std::span<const uint8_t> bytes, const std::string& path) {
  KeyBlob blob;
  size_t offset = 0;
  if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(bytes.data(), bytes.size(), &offset, &blob.private_part) != 0 ||
      Tss2_MU_TPM2B_PUBLIC_Unmarshal(bytes.data(), bytes.size(), &offset, &blob.public_part) != 0 ||
      offset != bytes.size()) {
    return Status(Code::kDataLoss, "TPM key file " + path + " is damaged");
  }
  return blob;
}

constexpr size_t kMaxLoadedKeys = 2;

// One TCTI connection, its storage primary, and the keys loaded beside it. Every TPM command
// goes through here under `mutex_`.
class TpmDevice {
 public:
  static Result<std::shared_ptr<TpmDevice>> Open(const std::string& tcti_config) {
    static std::mutex mutex;
    static std::map<std::string, std::weak_ptr<TpmDevice>> open;
    std::lock_guard lock(mutex);
    if (auto existing = open[tcti_config].lock()) return existing;

    auto device = std::shared_ptr<TpmDevice>(new TpmDevice());
    TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti_config.c_str(), &device->tcti_);
    if (rc != TSS2_RC_SUCCESS) {
      return TpmError(rc, "cannot reach the TPM through TCTI '" + tcti_config + "'");
    }
    rc = Esys_Initialize(&device->esys_, device->tcti_, nullptr);
    if (rc != TSS2_RC_SUCCESS) return TpmError(rc, "starting ESAPI on TCTI '" + tcti_config + "'");
    rc = Esys_Startup(device->esys_, TPM2_SU_CLEAR);
    if (rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE) {
      return TpmError(rc, "starting the TPM on TCTI '" + tcti_config + "'");
    }
    SIGIL_RETURN_IF_ERROR(device->CreatePrimary());
    open[tcti_config] = device;
    return device;
  }

  ~TpmDevice() {
    if (esys_ != nullptr) {
      for (auto& [id, handle] : loaded_) Esys_FlushContext(esys_, handle);
      if (primary_ != ESYS_TR_NONE) Esys_FlushContext(esys_, primary_);
      Esys_Finalize(&esys_);
    }
    if (tcti_ != nullptr) Tss2_TctiLdr_Finalize(&tcti_);
  }

  Result<KeyBlob> CreateKey(KeyType type, const TPM2B_AUTH& auth) {
    std::lock_guard lock(mutex_);
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
    const TSS2_RC rc = Esys_Create(esys_, primary_, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                   &sensitive, &in_public, &outside, &pcrs, &out_private,
                                   &out_public, &creation_data, &creation_hash, &creation_ticket);
    EsysPtr<TPM2B_PRIVATE> p1(out_private);
    EsysPtr<TPM2B_PUBLIC> p2(out_public);
    EsysPtr<TPM2B_CREATION_DATA> p3(creation_data);
    EsysPtr<TPM2B_DIGEST> p4(creation_hash);
    EsysPtr<TPMT_TK_CREATION> p5(creation_ticket);
    if (rc != TSS2_RC_SUCCESS) return TpmError(rc, "creating a " + std::string(KeyTypeName(type)) + " key in the TPM");
    return KeyBlob{*out_private, *out_public};
  }

  // Signs with the key `id`, loading its blob first when it is not loaded.
  Result<TPMT_SIGNATURE> Sign(uint64_t id, const KeyBlob& blob, const TPM2B_AUTH& auth,
                              const TPM2B_DIGEST& digest, const TPMT_SIG_SCHEME& scheme) {
    std::lock_guard lock(mutex_);
    SIGIL_ASSIGN_OR_RETURN(ESYS_TR handle, LoadedHandle(id, blob, auth));
    TPMT_TK_HASHCHECK validation{};
    validation.tag = TPM2_ST_HASHCHECK;
    validation.hierarchy = TPM2_RH_NULL;
    TPMT_SIGNATURE* signature = nullptr;
    const TSS2_RC rc = Esys_Sign(esys_, handle, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                 &digest, &scheme, &validation, &signature);
    EsysPtr<TPMT_SIGNATURE> owned(signature);
    if (rc != TSS2_RC_SUCCESS) return TpmError(rc, "signing in the TPM");
    return *signature;
  }

  // Checks that this TPM can load the blob (it was made under this TPM's primary).
  Status CheckLoads(uint64_t id, const KeyBlob& blob, const TPM2B_AUTH& auth) {
    std::lock_guard lock(mutex_);
    return LoadedHandle(id, blob, auth).status();
  }

  void Unload(uint64_t id) {
    std::lock_guard lock(mutex_);
    if (auto it = loaded_.find(id); it != loaded_.end()) {
      Esys_FlushContext(esys_, it->second);
      loaded_.erase(it);
      lru_.remove(id);
    }
  }

  uint64_t NextKeyId() { return next_key_id_.fetch_add(1); }

 private:
  TpmDevice() = default;

  Status CreatePrimary() {
    const TPM2B_SENSITIVE_CREATE sensitive{};
    const TPM2B_PUBLIC in_public = StoragePrimaryTemplate();
    const TPM2B_DATA outside{};
    const TPML_PCR_SELECTION pcrs{};
    TPM2B_PUBLIC* out_public = nullptr;
    TPM2B_CREATION_DATA* creation_data = nullptr;
    TPM2B_DIGEST* creation_hash = nullptr;
    TPMT_TK_CREATION* creation_ticket = nullptr;
    const TSS2_RC rc = Esys_CreatePrimary(esys_, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                          ESYS_TR_NONE, &sensitive, &in_public, &outside, &pcrs,
                                          &primary_, &out_public, &creation_data, &creation_hash,
                                          &creation_ticket);
    Esys_Free(out_public);
    Esys_Free(creation_data);
    Esys_Free(creation_hash);
    Esys_Free(creation_ticket);
    if (rc != TSS2_RC_SUCCESS) {
      primary_ = ESYS_TR_NONE;
      return TpmError(rc, "creating the storage primary key under the owner hierarchy");
    }
    return Status::Ok();
  }

  void EvictLoadedKeysDownTo(size_t count) {
    while (loaded_.size() > count) {
      const uint64_t oldest = lru_.front();
      lru_.pop_front();
      Esys_FlushContext(esys_, loaded_[oldest]);
      loaded_.erase(oldest);
    }
  }

  Result<ESYS_TR> LoadedHandle(uint64_t id, const KeyBlob& blob, const TPM2B_AUTH& auth) {
    if (auto it = loaded_.find(id); it != loaded_.end()) {
      lru_.remove(id);
      lru_.push_back(id);
      return it->second;
    }
    EvictLoadedKeysDownTo(kMaxLoadedKeys - 1);
    ESYS_TR handle = ESYS_TR_NONE;
    TSS2_RC rc = Esys_Load(esys_, primary_, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                           &blob.private_part, &blob.public_part, &handle);
    if (rc != TSS2_RC_SUCCESS) {
      return TpmError(rc, "loading a key blob into the TPM (was it made by another TPM?)");
    }
    rc = Esys_TR_SetAuth(esys_, handle, &auth);
    if (rc != TSS2_RC_SUCCESS) {
      Esys_FlushContext(esys_, handle);
      return TpmError(rc, "setting the key's auth value");
    }
    loaded_[id] = handle;
    lru_.push_back(id);
    return handle;
  }

  std::mutex mutex_;
  TSS2_TCTI_CONTEXT* tcti_ = nullptr;
  ESYS_CONTEXT* esys_ = nullptr;
  ESYS_TR primary_ = ESYS_TR_NONE;
  std::map<uint64_t, ESYS_TR> loaded_;
  std::list<uint64_t> lru_;
  std::atomic<uint64_t> next_key_id_{1};
};

class TpmSigner final : public Signer {
 public:
  TpmSigner(std::shared_ptr<TpmDevice> device, KeyBlob blob, TPM2B_AUTH auth, KeyType type,
            EvpPkeyPtr public_key)
      : device_(std::move(device)), id_(device_->NextKeyId()), blob_(blob), auth_(auth),
        type_(type), public_key_(std::move(public_key)) {}

  ~TpmSigner() override { device_->Unload(id_); }

  KeyType key_type() const override { return type_; }
  EVP_PKEY* public_key() const override { return public_key_.get(); }
  uint64_t id() const { return id_; }

  Result<Bytes> SignDigest(SignatureScheme scheme, std::span<const uint8_t> digest) override {
    SIGIL_RETURN_IF_ERROR(CheckSignRequest(scheme, digest));
    TPM2B_DIGEST tpm_digest{};
    tpm_digest.size = static_cast<UINT16>(digest.size());
    std::memcpy(tpm_digest.buffer, digest.data(), digest.size());
    TPMT_SIG_SCHEME tpm_scheme{};
    const TPMI_ALG_HASH hash = scheme == SignatureScheme::kES384 ? TPM2_ALG_SHA384 : TPM2_ALG_SHA256;
    if (type_ == KeyType::kRsa2048) {
      tpm_scheme.scheme = TPM2_ALG_RSASSA;
      tpm_scheme.details.rsassa.hashAlg = hash;
    } else {
      tpm_scheme.scheme = TPM2_ALG_ECDSA;
      tpm_scheme.details.ecdsa.hashAlg = hash;
    }
    SIGIL_ASSIGN_OR_RETURN(TPMT_SIGNATURE signature,
                           device_->Sign(id_, blob_, auth_, tpm_digest, tpm_scheme));
    if (type_ == KeyType::kRsa2048) {
      const TPM2B_PUBLIC_KEY_RSA& sig = signature.signature.rsassa.sig;
      return Bytes(sig.buffer, sig.buffer + sig.size);
    }
    const size_t field = EcdsaFieldSize(type_);
    const TPM2B_ECC_PARAMETER& r = signature.signature.ecdsa.signatureR;
    const TPM2B_ECC_PARAMETER& s = signature.signature.ecdsa.signatureS;
    if (r.size > field || s.size > field) return Status(Code::kInternal, "TPM returned an oversized ECDSA signature");
    Bytes raw(2 * field, 0);
    std::memcpy(raw.data() + field - r.size, r.buffer, r.size);
    std::memcpy(raw.data() + 2 * field - s.size, s.buffer, s.size);
    return EcdsaRawToDer(raw);
  }

 private:
  std::shared_ptr<TpmDevice> device_;
  const uint64_t id_;
  const KeyBlob blob_;
  const TPM2B_AUTH auth_;
  const KeyType type_;
  EvpPkeyPtr public_key_;
};

Result<TPM2B_AUTH> ReadAuth(const std::filesystem::path& auth_file) {
  TPM2B_AUTH auth{};
  if (auth_file.empty()) return auth;
  std::ifstream in(auth_file);
  if (!in) return InvalidArgumentError("tpm: cannot read auth_file " + auth_file.string());
  std::string value;
  std::getline(in, value);
  if (value.size() > sizeof(auth.buffer)) {
    return InvalidArgumentError("tpm: the auth value in " + auth_file.string() + " is longer than " +
                                std::to_string(sizeof(auth.buffer)) + " bytes");
  }
  auth.size = static_cast<UINT16>(value.size());
  std::memcpy(auth.buffer, value.data(), value.size());
  return auth;
}

class TpmKeyStore final : public KeyStore {
 public:
  TpmKeyStore(std::shared_ptr<TpmDevice> device, std::filesystem::path data_dir, TPM2B_AUTH auth)
      : device_(std::move(device)), data_dir_(std::move(data_dir)), auth_(auth) {}

  KeyStoreKind kind() const override { return KeyStoreKind::kTpm; }

  Result<std::shared_ptr<Signer>> FindKey(std::string_view label) override {
    SIGIL_RETURN_IF_ERROR(ValidateKeyLabel(label));
    std::lock_guard lock(mutex_);
    return FindLocked(std::string(label));
  }

  Result<std::shared_ptr<Signer>> CreateKey(std::string_view label, KeyType type) override {
    SIGIL_RETURN_IF_ERROR(ValidateKeyLabel(label));
    std::lock_guard lock(mutex_);
    const std::string name(label);
    auto existing = FindLocked(name);
    if (existing.ok()) return AlreadyExistsError("TPM key '" + name + "' already exists in " + data_dir_.string());
    if (existing.status().code() != Code::kNotFound) return existing.status();
    SIGIL_ASSIGN_OR_RETURN(KeyBlob blob, device_->CreateKey(type, auth_));
    SIGIL_RETURN_IF_ERROR(WriteBlob(name, MarshalBlob(blob)));
    return MakeSigner(name, blob);
  }

  Status DeleteKey(std::string_view label) override {
    SIGIL_RETURN_IF_ERROR(ValidateKeyLabel(label));
    std::lock_guard lock(mutex_);
    const std::string name(label);
    signers_.erase(name);
    if (::unlink(BlobPath(name).c_str()) != 0) {
      if (errno == ENOENT) return NotFoundError("no TPM key '" + name + "' in " + data_dir_.string());
      return ErrnoError(Code::kInternal, "removing " + BlobPath(name).string());
    }
    return Status::Ok();
  }

  Status PrepareDir() {
    if (::mkdir(data_dir_.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoError(Code::kFailedPrecondition, "creating TPM data folder " + data_dir_.string());
    }
    return Status::Ok();
  }

 private:
  std::filesystem::path BlobPath(const std::string& label) const { return data_dir_ / (label + ".tpmkey"); }

  Result<std::shared_ptr<Signer>> FindLocked(const std::string& label) {
    if (auto it = signers_.find(label); it != signers_.end()) return std::shared_ptr<Signer>(it->second);
    const std::filesystem::path path = BlobPath(label);
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      if (errno == ENOENT) return NotFoundError("no TPM key '" + label + "' in " + data_dir_.string());
      return ErrnoError(Code::kPermissionDenied, "reading TPM key file " + path.string());
    }
    const Bytes bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SIGIL_ASSIGN_OR_RETURN(KeyBlob blob, UnmarshalBlob(bytes, path.string()));
    return MakeSigner(label, blob);
  }

  Result<std::shared_ptr<Signer>> MakeSigner(const std::string& label, const KeyBlob& blob) {
    SIGIL_ASSIGN_OR_RETURN(KeyType type, KeyTypeOfTpmPublic(blob.public_part.publicArea));
    SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr public_key, PublicKeyOfTpmPublic(blob.public_part.publicArea));
    auto signer = std::make_shared<TpmSigner>(device_, blob, auth_, type, std::move(public_key));
    // Loading now turns a blob from another TPM into an error here, not at the first signature.
    SIGIL_RETURN_IF_ERROR(device_->CheckLoads(signer->id(), blob, auth_));
    signers_[label] = signer;
    return std::shared_ptr<Signer>(signer);
  }

  Status WriteBlob(const std::string& label, const Bytes& bytes) {
    return WriteSecretFile(BlobPath(label), bytes, "TPM key file");
  }

  std::shared_ptr<TpmDevice> device_;
  const std::filesystem::path data_dir_;
  const TPM2B_AUTH auth_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<TpmSigner>> signers_;
};

}  // namespace

Result<std::unique_ptr<KeyStore>> OpenTpmKeyStore(const KeyStoreConfig& config) {
  if (config.tcti.empty()) {
    return InvalidArgumentError("tpm: tcti is required (swtpm:host=127.0.0.1,port=N or device:/dev/tpmrm0)");
  }
  if (config.data_dir.empty()) return InvalidArgumentError("tpm: data_dir is required for the key blobs");
  SIGIL_ASSIGN_OR_RETURN(TPM2B_AUTH auth, ReadAuth(config.auth_file));
  SIGIL_ASSIGN_OR_RETURN(std::shared_ptr<TpmDevice> device, TpmDevice::Open(config.tcti));
  auto store = std::make_unique<TpmKeyStore>(std::move(device), config.data_dir, auth);
  SIGIL_RETURN_IF_ERROR(store->PrepareDir());
  return std::unique_ptr<KeyStore>(std::move(store));
}

}  // namespace sigil::hw
