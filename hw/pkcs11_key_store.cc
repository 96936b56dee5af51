#include "hw/pkcs11_key_store.h"

#include <dlfcn.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <mutex>
#include <shared_mutex>
#include <sstream>

#include "core/event_loop_check.h"
#include "core/mpmc_queue.h"
#include "core/openssl_util.h"
#include "hw/heal_backoff.h"
#include "hw/locked_key_store.h"

namespace sigil::hw {

namespace {

std::string ReturnValueName(CK_RV rv) {
  switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_HOST_MEMORY: return "CKR_HOST_MEMORY";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
    case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
    case CKR_ATTRIBUTE_SENSITIVE: return "CKR_ATTRIBUTE_SENSITIVE";
    case CKR_ATTRIBUTE_TYPE_INVALID: return "CKR_ATTRIBUTE_TYPE_INVALID";
    case CKR_ATTRIBUTE_VALUE_INVALID: return "CKR_ATTRIBUTE_VALUE_INVALID";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_DEVICE_MEMORY: return "CKR_DEVICE_MEMORY";
    case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
    case CKR_KEY_HANDLE_INVALID: return "CKR_KEY_HANDLE_INVALID";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_OBJECT_HANDLE_INVALID: return "CKR_OBJECT_HANDLE_INVALID";
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_SESSION_COUNT: return "CKR_SESSION_COUNT";
    case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
    case CKR_TEMPLATE_INCOMPLETE: return "CKR_TEMPLATE_INCOMPLETE";
    case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    case CKR_SESSION_CLOSED: return "CKR_SESSION_CLOSED";
    case CKR_USER_PIN_NOT_INITIALIZED: return "CKR_USER_PIN_NOT_INITIALIZED";
    case CKR_BUFFER_TOO_SMALL: return "CKR_BUFFER_TOO_SMALL";
    case CKR_CRYPTOKI_NOT_INITIALIZED: return "CKR_CRYPTOKI_NOT_INITIALIZED";
    default: {
      std::ostringstream out;
      out << "CKR 0x" << std::hex << rv;
      return out.str();
    }
  }
}

// Return values that mean the token forgot this process's session, login or object handles
// rather than refused the request: a token reset or re-plugged, or SoftHSM2 failing to reread
// its object files (it does under EMFILE) and loading them again under new handles. They are
// healed by opening a new session, logging in again and finding the key by its label.
bool MeansLostState(CK_RV rv) {
  switch (rv) {
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_KEY_HANDLE_INVALID:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
      return true;
    default:
      return false;
  }
}

Status CkError(CK_RV rv, const std::string& what) {
  Code code = Code::kInternal;
  if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED) code = Code::kPermissionDenied;
  if (MeansLostState(rv) || rv == CKR_SESSION_COUNT) code = Code::kUnavailable;
  return Status(code, what + " (" + ReturnValueName(rv) + ")");
}

// Token labels and serials are fixed-width fields padded with spaces.
std::string PaddedField(const CK_UTF8CHAR* field, size_t size) {
  std::string text(reinterpret_cast<const char*>(field), size);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
  return text;
}

// A loaded module, initialised once per process and shared by every store that names it:
// C_Finalize from one store would otherwise pull the module from under another.
class Module {
 public:
  static Result<std::shared_ptr<Module>> Load(const std::filesystem::path& path) {
    static std::mutex mutex;
    static std::map<std::string, std::weak_ptr<Module>> loaded;
    std::lock_guard lock(mutex);
    if (auto existing = loaded[path.string()].lock()) return existing;

    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      return Status(Code::kFailedPrecondition,
                    "cannot load PKCS#11 module " + path.string() + ": " + ::dlerror());
    }
    auto get_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(handle, "C_GetFunctionList"));
    CK_FUNCTION_LIST_PTR functions = nullptr;
    if (get_list == nullptr || get_list(&functions) != CKR_OK || functions == nullptr) {
      ::dlclose(handle);
      return Status(Code::kFailedPrecondition,
                    path.string() + " is not a PKCS#11 module: no C_GetFunctionList");
    }
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    const CK_RV rv = functions->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      ::dlclose(handle);
      return CkError(rv, "initialising PKCS#11 module " + path.string());
    }
    auto module = std::shared_ptr<Module>(
        new Module(handle, functions, /*finalize=*/rv == CKR_OK));
    loaded[path.string()] = module;
    return module;
  }

  ~Module() {
    if (finalize_ && initialized()) functions_->C_Finalize(nullptr);
    ::dlclose(handle_);
  }

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
  Status ReinitializeExclusive() {
    if (initialized_.load(std::memory_order_acquire)) {
      functions_->C_Finalize(nullptr);
      initialized_.store(false, std::memory_order_release);
      epoch_.fetch_add(1, std::memory_order_acq_rel);
    }
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    const CK_RV rv = functions_->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) return CkError(rv, "reinitialising the PKCS#11 module");
    initialized_.store(true, std::memory_order_release);
    finalize_ = true;
    return Status::Ok();
  }

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

Result<std::string> ReadPin(const KeyStoreConfig& config) {
  if (!config.pin_file.empty() && !config.pin_env.empty()) {
    return InvalidArgumentError("pkcs11: give the user PIN by pin_file or by pin_env, not both");
  }
  std::string pin;
  if (!config.pin_env.empty()) {
    const char* value = std::getenv(config.pin_env.c_str());
    if (value == nullptr) {
      return InvalidArgumentError("pkcs11: pin_env names " + config.pin_env + ", which is not set");
    }
    pin = value;
  } else if (!config.pin_file.empty()) {
    std::ifstream in(config.pin_file);
    if (!in) return InvalidArgumentError("pkcs11: cannot read pin_file " + config.pin_file.string());
    std::getline(in, pin);
    while (!pin.empty() && (pin.back() == '\r' || pin.back() == ' ')) pin.pop_back();
  } else {
    return InvalidArgumentError("pkcs11: the user PIN is needed: set pin_file or pin_env");
  }
  if (pin.empty()) return InvalidArgumentError("pkcs11: the user PIN is empty");
  return pin;
}

Result<CK_SLOT_ID> FindSlot(CK_FUNCTION_LIST* f, const KeyStoreConfig& config, std::string* label) {
  CK_ULONG count = 0;
  CK_RV rv = f->C_GetSlotList(CK_TRUE, nullptr, &count);
  if (rv != CKR_OK) return CkError(rv, "listing PKCS#11 slots");
  std::vector<CK_SLOT_ID> slots(count);
  rv = f->C_GetSlotList(CK_TRUE, slots.data(), &count);
  if (rv != CKR_OK) return CkError(rv, "listing PKCS#11 slots");
  slots.resize(count);
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info{};
    if (f->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    const std::string token_label = PaddedField(info.label, sizeof(info.label));
    const std::string serial = PaddedField(info.serialNumber, sizeof(info.serialNumber));
    if (!config.token_label.empty() && token_label != config.token_label) continue;
    if (!config.token_serial.empty() && serial != config.token_serial) continue;
    if ((info.flags & CKF_TOKEN_INITIALIZED) == 0) continue;
    *label = token_label;
    return slot;
  }
  std::string wanted = config.token_label.empty() ? "" : "label '" + config.token_label + "'";
  if (!config.token_serial.empty()) {
    wanted += (wanted.empty() ? "" : " and ") + std::string("serial '") + config.token_serial + "'";
  }
  return NotFoundError("no initialised PKCS#11 token with " + wanted + " in " +
                       config.module_path.string());
}

Result<Bytes> GetAttribute(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                           CK_ATTRIBUTE_TYPE type, const char* name) {
  CK_ATTRIBUTE attribute{type, nullptr, 0};
  CK_RV rv = f->C_GetAttributeValue(session, object, &attribute, 1);
  if (rv != CKR_OK) return CkError(rv, std::string("reading ") + name);
  Bytes value(attribute.ulValueLen);
  attribute.pValue = value.data();
  rv = f->C_GetAttributeValue(session, object, &attribute, 1);
  if (rv != CKR_OK) return CkError(rv, std::string("reading ") + name);
  value.resize(attribute.ulValueLen);
  return value;
}

// Objects of `object_class` whose CKA_LABEL is `label`.
Result<std::vector<CK_OBJECT_HANDLE>> FindObjects(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session,
                                                  CK_OBJECT_CLASS object_class,
                                                  const std::string& label) {
  CK_ATTRIBUTE query[] = {
      {CKA_CLASS, &object_class, sizeof(object_class)},
      {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
  };
  CK_RV rv = f->C_FindObjectsInit(session, query, 2);
  if (rv != CKR_OK) return CkError(rv, "searching the token for '" + label + "'");
  std::vector<CK_OBJECT_HANDLE> found(8);
  CK_ULONG count = 0;
  rv = f->C_FindObjects(session, found.data(), found.size(), &count);
  f->C_FindObjectsFinal(session);
  if (rv != CKR_OK) return CkError(rv, "searching the token for '" + label + "'");
  found.resize(count);
  return found;
}

Bytes CurveOid(KeyType type) {
  ASN1_OBJECT* oid = OBJ_nid2obj(type == KeyType::kEcP384 ? NID_secp384r1 : NID_X9_62_prime256v1);
  Bytes der(i2d_ASN1_OBJECT(oid, nullptr));
  unsigned char* out = der.data();
  i2d_ASN1_OBJECT(oid, &out);
  return der;
}

Result<KeyType> CurveFromOid(std::span<const uint8_t> der) {
  for (KeyType type : {KeyType::kEcP256, KeyType::kEcP384}) {
    const Bytes oid = CurveOid(type);
    if (der.size() == oid.size() && std::equal(der.begin(), der.end(), oid.begin())) return type;
  }
  return InvalidArgumentError("token key is on a curve Sigil does not use");
}

// CKA_EC_POINT is a DER OCTET STRING around the point (PKCS#11 2.40); some modules give the
// bare point.
std::span<const uint8_t> UnwrapEcPoint(std::span<const uint8_t> value) {
  if (value.size() > 2 && value[0] == 0x04 && value[1] == value.size() - 2) return value.subspan(2);
  if (value.size() > 3 && value[0] == 0x04 && value[1] == 0x81 && value[2] == value.size() - 3) {
    return value.subspan(3);
  }
  return value;
}


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
