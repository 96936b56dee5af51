#include "hw/pkcs11_key_store.h"

#include <openssl/objects.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <mutex>
#include <shared_mutex>

#include "core/event_loop_check.h"
#include "core/mpmc_queue.h"
#include "core/openssl_util.h"
#include "hw/heal_backoff.h"
#include "hw/locked_key_store.h"
#include "hw/pkcs11_module.h"

namespace sigil::hw {

namespace {

using namespace pkcs11;  // NOLINT: the store is the module layer's one user

constexpr size_t kMaxPooledSessions = 64;

// One token: its slot, the login, and a pool of sessions so each signing thread has its own.
// One session (the anchor) is held open because closing a token's last session logs the
// application out. The PIN is kept to log in again after the token was healed.
//
// Every method that calls into the module is called with module().calls() held shared, except
// HealLocked, which takes it itself.
class Token {
 public:
  // A session borrowed for one operation, given back to the pool even on error paths.
  class Lease {
   public:
    Lease(Token& token, CK_SESSION_HANDLE session) : token_(token), session_(session), epoch_(token.epoch_) {}
    ~Lease() { token_.ReleaseSession(session_, epoch_, lost_); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    CK_SESSION_HANDLE get() const { return session_; }
    // The module epoch the session belongs to.
    uint64_t epoch() const { return epoch_; }
    // The module no longer knows the session, or no longer knows what it signs with: it is
    // forgotten, and healing (which reinitialises the module) frees it.
    void Lost() { lost_ = true; }

   private:
    Token& token_;
    CK_SESSION_HANDLE session_;
    uint64_t epoch_;
    bool lost_ = false;
  };

  Token(std::shared_ptr<Module> module, KeyStoreConfig selector, CK_SLOT_ID slot, std::string label,
        std::string pin)
      : module_(std::move(module)), selector_(std::move(selector)), label_(std::move(label)),
        pin_(std::move(pin)), pool_(kMaxPooledSessions), slot_(slot) {}

  ~Token() {
    std::shared_lock calls(module_->calls());
    if (current()) {
      while (auto session = pool_.TryPop()) f()->C_CloseSession(*session);
      // No C_Logout: the login belongs to the whole process, and another store may still use
      // the token; closing the process's last session on it logs out anyway.
      if (anchor_ != CK_INVALID_HANDLE) f()->C_CloseSession(anchor_);
    }
    OPENSSL_cleanse(pin_.data(), pin_.size());
  }

  Module& module() const { return *module_; }
  CK_FUNCTION_LIST* f() const { return module_->f(); }
  const std::string& label() const { return label_; }
  std::mutex& management_mutex() { return management_mutex_; }

  // Opens the anchor and logs in.
  Status Open() {
    std::lock_guard lock(management_mutex_);
    std::shared_lock calls(module_->calls());
    return OpenAnchorLocked();
  }

  // False once the module was reinitialised under this token's sessions: they are dead.
  bool current() const { return epoch_.load(std::memory_order_acquire) == module_->epoch(); }

  // The session kept for key management; callers hold management_mutex.
  CK_SESSION_HANDLE anchor() const { return anchor_; }

  Result<std::unique_ptr<Lease>> AcquireSession() {
    if (auto session = pool_.TryPop()) return std::make_unique<Lease>(*this, *session);
    CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
    const CK_RV rv = f()->C_OpenSession(slot_.load(std::memory_order_acquire), CKF_SERIAL_SESSION, nullptr, nullptr, &session);
    if (rv != CKR_OK) return CkError(rv, "opening a signing session on token '" + label_ + "'");
    return std::make_unique<Lease>(*this, session);
  }

  // Called with management_mutex held and calls() not held, when an operation failed with
  // `cause`: a MeansLostState value in module epoch `lost_in_epoch`, or sessions or handles
  // found to predate a reinitialisation (no epoch). For a loss in the current epoch the
  // module is reinitialised; then a new anchor is opened and logged in unless this token has
  // one of the current epoch already, and `rebind` runs (with calls() held shared) to find the
  // caller's key again. Within the back-off after a failed attempt it returns Unavailable
  // without touching the module.
  Status HealLocked(std::optional<uint64_t> lost_in_epoch, const Status& cause, const std::function<Status()>& rebind) {
    SIGIL_RETURN_IF_ERROR(backoff_.MayTry(cause));
    Status healed = Status::Ok();
    if ((lost_in_epoch && *lost_in_epoch == module_->epoch()) || !module_->initialized()) {
      std::unique_lock alone(module_->calls());
      healed = module_->ReinitializeExclusive();
    }
    if (healed.ok()) {
      std::shared_lock calls(module_->calls());
      if (!current()) healed = OpenAnchorLocked();
      if (healed.ok()) healed = rebind();
    }
    return backoff_.Attempted(cause, healed);
  }

 private:
  // With management_mutex and calls() held. Sessions of an earlier epoch died with it; they
  // are forgotten, never closed (their numbers may belong to new sessions now).
  Status OpenAnchorLocked() {
    const uint64_t epoch = module_->epoch();
    if (epoch_.load(std::memory_order_relaxed) != epoch) {
      while (pool_.TryPop()) {
      }
      anchor_ = CK_INVALID_HANDLE;
      // Slot numbers may change when a module starts again; the token is found again by the
      // label or serial that named it.
      std::string label;
      SIGIL_ASSIGN_OR_RETURN(CK_SLOT_ID slot, FindSlot(f(), selector_, &label));
      slot_.store(slot, std::memory_order_release);
    }
    CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
    CK_RV rv = f()->C_OpenSession(slot_.load(std::memory_order_acquire), CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                  nullptr, nullptr, &session);
    if (rv != CKR_OK) return CkError(rv, "opening a session on token '" + label_ + "'");
    rv = f()->C_Login(session, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(pin_.data()), pin_.size());
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
      f()->C_CloseSession(session);
      return CkError(rv, "logging in to token '" + label_ + "' with the user PIN");
    }
    anchor_ = session;
    epoch_.store(epoch, std::memory_order_release);
    return Status::Ok();
  }

  // With calls() held shared.
  void ReleaseSession(CK_SESSION_HANDLE session, uint64_t epoch, bool lost) {
    if (lost || epoch != module_->epoch()) return;
    if (!pool_.TryPush(session)) f()->C_CloseSession(session);
  }

  std::shared_ptr<Module> module_;
  const KeyStoreConfig selector_;  // the module, and the token's label or serial
  const std::string label_;
  std::string pin_;
  std::mutex management_mutex_;
  MpmcQueue<CK_SESSION_HANDLE> pool_;
  std::atomic<CK_SLOT_ID> slot_;
  std::atomic<uint64_t> epoch_{0};  // the module epoch of the anchor and the pooled sessions
  // Guarded by management_mutex_.
  CK_SESSION_HANDLE anchor_ = CK_INVALID_HANDLE;
  HealBackoff backoff_{"PKCS#11 token '" + label_ + "'"};
};

// A key pair found on the token by label: the private key's handle and the public half.
struct TokenKeyPair {
  CK_OBJECT_HANDLE private_key = CK_INVALID_HANDLE;
  KeyType type = KeyType::kEcP256;
  EvpPkeyPtr public_key;
};

// Called with the token's management_mutex held (it searches on the anchor).
Result<TokenKeyPair> FindKeyPairLocked(Token& token, const std::string& label) {
  CK_FUNCTION_LIST* f = token.f();
  const CK_SESSION_HANDLE session = token.anchor();
  SIGIL_ASSIGN_OR_RETURN(auto privates, FindObjects(f, session, CKO_PRIVATE_KEY, label));
  if (privates.empty()) {
    return NotFoundError("token '" + token.label() + "' holds no key '" + label + "'");
  }
  if (privates.size() > 1) {
    return Status(Code::kFailedPrecondition,
                  "token '" + token.label() + "' holds several private keys labelled '" + label + "'");
  }
  SIGIL_ASSIGN_OR_RETURN(auto publics, FindObjects(f, session, CKO_PUBLIC_KEY, label));
  if (publics.size() != 1) {
    return Status(Code::kFailedPrecondition,
                  "token '" + token.label() + "' has " + std::to_string(publics.size()) +
                      " public keys labelled '" + label + "', expected one");
  }
  TokenKeyPair pair;
  pair.private_key = privates[0];
  SIGIL_ASSIGN_OR_RETURN(Bytes key_type_bytes, GetAttribute(f, session, privates[0], CKA_KEY_TYPE, "CKA_KEY_TYPE"));
  CK_KEY_TYPE key_type = 0;
  std::memcpy(&key_type, key_type_bytes.data(), std::min(key_type_bytes.size(), sizeof(key_type)));
  if (key_type == CKK_EC) {
    SIGIL_ASSIGN_OR_RETURN(Bytes params, GetAttribute(f, session, publics[0], CKA_EC_PARAMS, "CKA_EC_PARAMS"));
    SIGIL_ASSIGN_OR_RETURN(pair.type, CurveFromOid(params));
    SIGIL_ASSIGN_OR_RETURN(Bytes point, GetAttribute(f, session, publics[0], CKA_EC_POINT, "CKA_EC_POINT"));
    SIGIL_ASSIGN_OR_RETURN(pair.public_key, EcPublicKeyFromPoint(pair.type == KeyType::kEcP384 ? "P-384" : "P-256",
                                                                UnwrapEcPoint(point)));
  } else if (key_type == CKK_RSA) {
    SIGIL_ASSIGN_OR_RETURN(Bytes modulus, GetAttribute(f, session, publics[0], CKA_MODULUS, "CKA_MODULUS"));
    SIGIL_ASSIGN_OR_RETURN(Bytes exponent, GetAttribute(f, session, publics[0], CKA_PUBLIC_EXPONENT, "CKA_PUBLIC_EXPONENT"));
    SIGIL_ASSIGN_OR_RETURN(pair.public_key, RsaPublicKeyFromParts(modulus, exponent));
    SIGIL_ASSIGN_OR_RETURN(pair.type, KeyTypeOf(pair.public_key.get()));
  } else {
    return InvalidArgumentError("token key '" + label + "' is neither EC nor RSA");
  }
  return pair;
}

// The DER DigestInfo prefix for SHA-256 (RFC 8017, section 9.2 note 1): CKM_RSA_PKCS signs
// exactly what it is given, so the caller wraps the digest.
constexpr uint8_t kSha256DigestInfoPrefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                               0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                               0x01, 0x05, 0x00, 0x04, 0x20};

// Signs with a private key on the token. When the module forgot the session or the key's
// handle, the signer heals the token, finds its key again by label (refusing a key with
// another public half) and signs once more.
class Pkcs11Signer final : public Signer {
 public:
  Pkcs11Signer(std::shared_ptr<Token> token, std::string label, TokenKeyPair pair)
      : token_(std::move(token)), label_(std::move(label)), private_key_(pair.private_key),
        key_epoch_(token_->module().epoch()), type_(pair.type), public_key_(std::move(pair.public_key)) {}

  KeyType key_type() const override { return type_; }
  EVP_PKEY* public_key() const override { return public_key_.get(); }

  Result<Bytes> SignDigest(SignatureScheme scheme, std::span<const uint8_t> digest) override {
    SIGIL_RETURN_IF_ERROR(CheckSignRequest(scheme, digest));
    CK_MECHANISM mechanism{CKM_ECDSA, nullptr, 0};
    const size_t prefix = type_ == KeyType::kRsa2048 ? sizeof(kSha256DigestInfoPrefix) : 0;
    Bytes input(prefix + digest.size());
    if (prefix > 0) {
      mechanism.mechanism = CKM_RSA_PKCS;
      std::memcpy(input.data(), kSha256DigestInfoPrefix, prefix);
    }
    std::memcpy(input.data() + prefix, digest.data(), digest.size());
    AssertNotOnEventLoop("PKCS#11 Sign");

    // At most two heals: one for handles that predate a reinitialisation by another signer,
    // one for a loss this signer sees.
    for (int heals = 0;; ++heals) {
      Status failed;
      std::optional<uint64_t> lost_in_epoch;
      {
        std::shared_lock calls(token_->module().calls());
        const uint64_t epoch = token_->module().epoch();
        if (!token_->current() || key_epoch_.load(std::memory_order_acquire) != epoch) {
          failed = UnavailableError("the PKCS#11 module was reinitialised since key '" + label_ + "' was found");
        } else if (auto session = token_->AcquireSession(); !session.ok()) {
          if (session.status().code() != Code::kUnavailable) return std::move(session).status();
          failed = std::move(session).status();
          lost_in_epoch = epoch;
        } else {
          Bytes signature(type_ == KeyType::kRsa2048 ? 256 : 2 * EcdsaFieldSize(type_));
          CK_ULONG length = signature.size();
          const char* step = "starting a signature";
          CK_RV rv = token_->f()->C_SignInit((*session)->get(), &mechanism, private_key_.load(std::memory_order_acquire));
          if (rv == CKR_OK) {
            step = "signing";
            rv = token_->f()->C_Sign((*session)->get(), input.data(), input.size(), signature.data(), &length);
          }
          if (rv == CKR_OK) {
            signature.resize(length);
            if (type_ == KeyType::kRsa2048) return signature;
            return EcdsaRawToDer(signature);  // PKCS#11 returns r||s; X.509 wants DER
          }
          failed = CkError(rv, std::string(step) + " with key '" + label_ + "' on token '" + token_->label() + "'");
          if (!MeansLostState(rv)) return failed;
          (*session)->Lost();
          lost_in_epoch = epoch;
        }
      }
      if (heals == 2) return failed;
      std::lock_guard lock(token_->management_mutex());
      SIGIL_RETURN_IF_ERROR(token_->HealLocked(lost_in_epoch, failed, [&] { return RebindLocked(); }));
    }
  }

 private:
  // With the token's management_mutex held and calls() held shared.
  Status RebindLocked() {
    SIGIL_ASSIGN_OR_RETURN(TokenKeyPair found, FindKeyPairLocked(*token_, label_));
    if (EVP_PKEY_eq(found.public_key.get(), public_key_.get()) != 1) {
      return Status(Code::kFailedPrecondition,
                    "key '" + label_ + "' on token '" + token_->label() + "' is no longer the key it was");
    }
    // The handle before the epoch: a signer that reads the new epoch reads the new handle.
    private_key_.store(found.private_key, std::memory_order_release);
    key_epoch_.store(token_->module().epoch(), std::memory_order_release);
    return Status::Ok();
  }

  std::shared_ptr<Token> token_;
  const std::string label_;
  std::atomic<CK_OBJECT_HANDLE> private_key_;
  std::atomic<uint64_t> key_epoch_;  // the module epoch private_key_ belongs to
  KeyType type_;
  EvpPkeyPtr public_key_;
};

class Pkcs11KeyStore final : public LockedKeyStore {
 public:
  explicit Pkcs11KeyStore(std::shared_ptr<Token> token) : token_(std::move(token)) {}

  KeyStoreKind kind() const override { return KeyStoreKind::kPkcs11; }

 protected:
  std::mutex& management_mutex() override { return token_->management_mutex(); }

  Status LabelTaken(const std::string& label) const override {
    return AlreadyExistsError("token '" + token_->label() + "' already holds key '" + label + "'");
  }

  Result<std::shared_ptr<Signer>> CreateLocked(const std::string& name, KeyType type) override {
    return OnAnchorLocked([&] { return GenerateOnAnchor(name, type); });
  }

  Status DeleteLocked(const std::string& name) override {
    return OnAnchorLocked([&] { return DeleteOnAnchor(name); });
  }

  Result<std::shared_ptr<Signer>> FindLocked(const std::string& label) override {
    return OnAnchorLocked([&] { return FindOnAnchor(label); });
  }

 private:
  // Runs `step` on the anchor session with the module's calls held shared. Heals the token
  // first when its sessions predate a reinitialisation, and once more when the step finds the
  // session lost (CkError says Unavailable for MeansLostState values).
  template <typename Step>
  auto OnAnchorLocked(Step step) -> decltype(step()) {
    for (int heals = 0;; ++heals) {
      Status failed;
      std::optional<uint64_t> lost_in_epoch;
      {
        std::shared_lock calls(token_->module().calls());
        if (!token_->current()) {
          failed = UnavailableError("the PKCS#11 module was reinitialised since token '" + token_->label() + "' was opened");
        } else {
          auto result = step();
          if (StatusOf(result).code() != Code::kUnavailable || heals == 2) return result;
          failed = StatusOf(result);
          lost_in_epoch = token_->module().epoch();
        }
      }
      if (heals == 2) return failed;
      SIGIL_RETURN_IF_ERROR(token_->HealLocked(lost_in_epoch, failed, [] { return Status::Ok(); }));
    }
  }

  Result<std::shared_ptr<Signer>> FindOnAnchor(const std::string& label) {
    SIGIL_ASSIGN_OR_RETURN(TokenKeyPair found, FindKeyPairLocked(*token_, label));
    return std::shared_ptr<Signer>(std::make_shared<Pkcs11Signer>(token_, label, std::move(found)));
  }

  Result<std::shared_ptr<Signer>> GenerateOnAnchor(const std::string& name, KeyType type) {
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    uint8_t id[16];
    if (RAND_bytes(id, sizeof(id)) != 1) return OpenSSLError(Code::kInternal, "drawing a key id");
    const Bytes oid = CurveOid(type);
    CK_ULONG modulus_bits = 2048;
    uint8_t exponent[] = {0x01, 0x00, 0x01};
    std::vector<CK_ATTRIBUTE> public_template = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_VERIFY, &yes, sizeof(yes)},
        {CKA_LABEL, const_cast<char*>(name.data()), name.size()},
        {CKA_ID, id, sizeof(id)},
    };
    std::vector<CK_ATTRIBUTE> private_template = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_LABEL, const_cast<char*>(name.data()), name.size()},
        {CKA_ID, id, sizeof(id)},
    };
    CK_MECHANISM mechanism{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    if (type == KeyType::kRsa2048) {
      mechanism.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
      public_template.push_back({CKA_MODULUS_BITS, &modulus_bits, sizeof(modulus_bits)});
      public_template.push_back({CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent)});
    } else {
      public_template.push_back({CKA_EC_PARAMS, const_cast<uint8_t*>(oid.data()), oid.size()});
    }
    CK_OBJECT_HANDLE public_key = CK_INVALID_HANDLE, private_key = CK_INVALID_HANDLE;
    const CK_RV rv = token_->f()->C_GenerateKeyPair(
        token_->anchor(), &mechanism, public_template.data(), public_template.size(),
        private_template.data(), private_template.size(), &public_key, &private_key);
    if (rv != CKR_OK) {
      return CkError(rv, "generating " + std::string(KeyTypeName(type)) + " key '" + name +
                             "' on token '" + token_->label() + "'");
    }
    return FindOnAnchor(name);
  }

  Status DeleteOnAnchor(const std::string& name) {
    bool any = false;
    for (CK_OBJECT_CLASS object_class : {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY}) {
      SIGIL_ASSIGN_OR_RETURN(auto objects, FindObjects(token_->f(), token_->anchor(), object_class, name));
      for (CK_OBJECT_HANDLE object : objects) {
        const CK_RV rv = token_->f()->C_DestroyObject(token_->anchor(), object);
        if (rv != CKR_OK) return CkError(rv, "deleting key '" + name + "'");
        any = true;
      }
    }
    if (!any) return NotFoundError("token '" + token_->label() + "' holds no key '" + name + "'");
    return Status::Ok();
  }

  std::shared_ptr<Token> token_;
};

}  // namespace

Result<std::unique_ptr<KeyStore>> OpenPkcs11KeyStore(const KeyStoreConfig& config) {
  if (config.module_path.empty()) return InvalidArgumentError("pkcs11: module_path is required");
  if (config.token_label.empty() && config.token_serial.empty()) {
    return InvalidArgumentError("pkcs11: name the token by token_label or token_serial");
  }
  SIGIL_ASSIGN_OR_RETURN(std::string pin, ReadPin(config));
  SIGIL_ASSIGN_OR_RETURN(std::shared_ptr<Module> module, Module::Load(config.module_path));
  std::string label;
  Result<CK_SLOT_ID> slot = [&] {
    std::shared_lock calls(module->calls());
    return FindSlot(module->f(), config, &label);
  }();
  if (!slot.ok()) return std::move(slot).status();
  auto token = std::make_shared<Token>(std::move(module), config, *slot, label, pin);
  OPENSSL_cleanse(pin.data(), pin.size());
  SIGIL_RETURN_IF_ERROR(token->Open());
  return std::unique_ptr<KeyStore>(std::make_unique<Pkcs11KeyStore>(std::move(token)));
}

}  // namespace sigil::hw
