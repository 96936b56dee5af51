#include "hw/soft_key_store.h"

#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "core/file.h"
#include "hw/durable_file.h"
#include "hw/locked_key_store.h"

namespace sigil::hw {

namespace {

class SoftSigner final : public Signer {
 public:
  SoftSigner(EvpPkeyPtr private_key, EvpPkeyPtr public_key, KeyType type)
      : private_key_(std::move(private_key)), public_key_(std::move(public_key)), type_(type) {}

  KeyType key_type() const override { return type_; }
  EVP_PKEY* public_key() const override { return public_key_.get(); }

  Result<Bytes> SignDigest(SignatureScheme scheme, std::span<const uint8_t> digest) override {
    SIGIL_RETURN_IF_ERROR(CheckSignRequest(scheme, digest));
    // A context per call: EVP_PKEY is safe to share between threads, contexts are not.
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(private_key_.get(), nullptr));
    if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1) {
      return OpenSSLError(Code::kInternal, "starting a software signature");
    }
    if (type_ == KeyType::kRsa2048 &&
        (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
         EVP_PKEY_CTX_set_signature_md(ctx.get(), SchemeDigest(scheme)) != 1)) {
      return OpenSSLError(Code::kInternal, "setting RSA PKCS#1 v1.5 padding");
    }
    size_t length = 0;
    if (EVP_PKEY_sign(ctx.get(), nullptr, &length, digest.data(), digest.size()) != 1) {
      return OpenSSLError(Code::kInternal, "sizing a software signature");
    }
    Bytes signature(length);
    if (EVP_PKEY_sign(ctx.get(), signature.data(), &length, digest.data(), digest.size()) != 1) {
      return OpenSSLError(Code::kInternal, "signing with a software key");
    }
    signature.resize(length);
    return signature;
  }

 private:
  EvpPkeyPtr private_key_;
  EvpPkeyPtr public_key_;
  KeyType type_;
};

class SoftKeyStore final : public LockedKeyStore {
 public:
  explicit SoftKeyStore(std::filesystem::path key_dir) : key_dir_(std::move(key_dir)) {}

  KeyStoreKind kind() const override { return KeyStoreKind::kSoft; }

  Status PrepareDir() {
    if (key_dir_.empty()) return Status::Ok();
    if (::mkdir(key_dir_.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoError(Code::kFailedPrecondition, "creating key folder " + key_dir_.string());
    }
    struct stat st {};
    if (::stat(key_dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Status(Code::kFailedPrecondition, "key folder " + key_dir_.string() + " is not a folder");
    }
    return Status::Ok();
  }

 protected:
  std::mutex& management_mutex() override { return mutex_; }

  Status LabelTaken(const std::string& label) const override {
    return AlreadyExistsError("key '" + label + "' already exists");
  }

  Result<std::shared_ptr<Signer>> CreateLocked(const std::string& label, KeyType type) override {
    SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, GenerateSoftKey(type));
    if (!key_dir_.empty()) SIGIL_RETURN_IF_ERROR(WriteKeyFile(label, key.get()));
    SIGIL_ASSIGN_OR_RETURN(std::shared_ptr<Signer> signer, MakeSoftSigner(std::move(key)));
    keys_[label] = signer;
    return signer;
  }

  Status DeleteLocked(const std::string& label) override {
    const bool in_memory = keys_.erase(label) > 0;
    if (key_dir_.empty()) {
      return in_memory ? Status::Ok() : NotFoundError("no key labelled '" + label + "'");
    }
    if (::unlink(KeyPath(label).c_str()) != 0) {
      if (errno == ENOENT) return NotFoundError("no key labelled '" + label + "'");
      return ErrnoError(Code::kInternal, "removing " + KeyPath(label).string());
    }
    return Status::Ok();
  }

  Result<std::shared_ptr<Signer>> FindLocked(const std::string& label) override {
    if (auto it = keys_.find(label); it != keys_.end()) return it->second;
    if (key_dir_.empty()) return NotFoundError("no key labelled '" + label + "'");
    const std::filesystem::path path = KeyPath(label);
    BioPtr bio(BIO_new_file(path.c_str(), "r"));
    if (!bio) {
      ClearOpenSSLErrors();
      if (errno == ENOENT) return NotFoundError("no key labelled '" + label + "' in " + key_dir_.string());
      return ErrnoError(Code::kPermissionDenied, "reading key file " + path.string());
    }
    EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key) return OpenSSLError(Code::kDataLoss, "key file " + path.string() + " is not a PEM private key");
    SIGIL_ASSIGN_OR_RETURN(std::shared_ptr<Signer> signer, MakeSoftSigner(std::move(key)));
    keys_[label] = signer;
    return signer;
  }

 private:
  std::filesystem::path KeyPath(const std::string& label) const { return key_dir_ / (label + ".pem"); }

  Status WriteKeyFile(const std::string& label, EVP_PKEY* key) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
      return OpenSSLError(Code::kInternal, "encoding key '" + label + "'");
    }
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio.get(), &data);
    const Status written = WriteFileDurably(
        KeyPath(label), {reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(length)}, 0600, "key file");
    OPENSSL_cleanse(data, static_cast<size_t>(length));
    return written;
  }

  const std::filesystem::path key_dir_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Signer>> keys_;
};

}  // namespace

Result<EvpPkeyPtr> GenerateSoftKey(KeyType type) {
  EvpPkeyPtr key;
  switch (type) {
    case KeyType::kEcP256: key.reset(EVP_EC_gen("P-256")); break;
    case KeyType::kEcP384: key.reset(EVP_EC_gen("P-384")); break;
    case KeyType::kRsa2048: key.reset(EVP_RSA_gen(2048)); break;
  }
  if (!key) return OpenSSLError(Code::kInternal, "generating a " + std::string(KeyTypeName(type)) + " key");
  return key;
}

Result<std::shared_ptr<Signer>> MakeSoftSigner(EvpPkeyPtr private_key) {
  SIGIL_ASSIGN_OR_RETURN(KeyType type, KeyTypeOf(private_key.get()));
  SIGIL_ASSIGN_OR_RETURN(Bytes public_der, PublicKeyToDer(private_key.get()));
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr public_key, PublicKeyFromDer(public_der));
  return std::shared_ptr<Signer>(
      std::make_shared<SoftSigner>(std::move(private_key), std::move(public_key), type));
}

Result<std::unique_ptr<KeyStore>> OpenSoftKeyStore(const KeyStoreConfig& config) {
  auto store = std::make_unique<SoftKeyStore>(config.key_dir);
  SIGIL_RETURN_IF_ERROR(store->PrepareDir());
  return std::unique_ptr<KeyStore>(std::move(store));
}

}  // namespace sigil::hw
