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
#include <list>
#include <map>
#include <mutex>

#include "core/base64url.h"
#include "core/event_loop_check.h"
#include "core/file.h"
#include "core/openssl_util.h"
#include "hw/durable_file.h"
#include "hw/locked_key_store.h"
#include "hw/tpm_device.h"
#include "hw/tpm_public.h"

namespace sigil::hw {

namespace {

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
    AssertNotOnEventLoop("TPM Sign");
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

class TpmKeyStore final : public LockedKeyStore {
 public:
  TpmKeyStore(std::shared_ptr<TpmDevice> device, std::filesystem::path data_dir, TPM2B_AUTH auth)
      : device_(std::move(device)), data_dir_(std::move(data_dir)), auth_(auth) {}

  KeyStoreKind kind() const override { return KeyStoreKind::kTpm; }

  Status PrepareDir() {
    if (::mkdir(data_dir_.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoError(Code::kFailedPrecondition, "creating TPM data folder " + data_dir_.string());
    }
    return Status::Ok();
  }

 protected:
  std::mutex& management_mutex() override { return mutex_; }

  Status LabelTaken(const std::string& label) const override {
    return AlreadyExistsError("TPM key '" + label + "' already exists in " + data_dir_.string());
  }

  Result<std::shared_ptr<Signer>> CreateLocked(const std::string& label, KeyType type) override {
    SIGIL_ASSIGN_OR_RETURN(KeyBlob blob, device_->CreateKey(type, auth_));
    SIGIL_RETURN_IF_ERROR(WriteBlob(label, MarshalBlob(blob)));
    return MakeSigner(label, blob);
  }

  Status DeleteLocked(const std::string& label) override {
    signers_.erase(label);
    if (::unlink(BlobPath(label).c_str()) != 0) {
      if (errno == ENOENT) return NotFoundError("no TPM key '" + label + "' in " + data_dir_.string());
      return ErrnoError(Code::kInternal, "removing " + BlobPath(label).string());
    }
    return Status::Ok();
  }

  Result<std::shared_ptr<Signer>> FindLocked(const std::string& label) override {
    if (auto it = signers_.find(label); it != signers_.end()) return std::shared_ptr<Signer>(it->second);
    const std::filesystem::path path = BlobPath(label);
    Result<std::string> bytes = ReadWholeFile(path, "TPM key file");
    if (!bytes.ok()) {
      if (bytes.status().code() == Code::kNotFound) return NotFoundError("no TPM key '" + label + "' in " + data_dir_.string());
      return bytes.status();
    }
    SIGIL_ASSIGN_OR_RETURN(KeyBlob blob, UnmarshalBlob(AsBytes(*bytes), path.string()));
    return MakeSigner(label, blob);
  }

 private:
  std::filesystem::path BlobPath(const std::string& label) const { return data_dir_ / (label + ".tpmkey"); }

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
    return WriteFileDurably(BlobPath(label), bytes, 0600, "TPM key file");
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
  SIGIL_ASSIGN_OR_RETURN(TPM2B_AUTH auth, ReadAuthFile(config.auth_file, "tpm: auth_file"));
  SIGIL_ASSIGN_OR_RETURN(std::shared_ptr<TpmDevice> device, TpmDevice::Open(config.tcti));
  auto store = std::make_unique<TpmKeyStore>(std::move(device), config.data_dir, auth);
  SIGIL_RETURN_IF_ERROR(store->PrepareDir());
  return std::unique_ptr<KeyStore>(std::move(store));
}

}  // namespace sigil::hw
