#include "hw/pkcs11_key_store.h"

#include <dlfcn.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "core/event_loop_check.h"
#include "core/mpmc_queue.h"
#include "core/openssl_util.h"
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

Status CkError(CK_RV rv, const std::string& what) {
  Code code = Code::kInternal;
  if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED) code = Code::kPermissionDenied;
  if (rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_SESSION_COUNT) {
    code = Code::kUnavailable;
  }
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
    if (finalize_) functions_->C_Finalize(nullptr);
    ::dlclose(handle_);
  }

  CK_FUNCTION_LIST* f() const { return functions_; }

 private:
  Module(void* handle, CK_FUNCTION_LIST_PTR functions, bool finalize)
      : handle_(handle), functions_(functions), finalize_(finalize) {}
  void* handle_;
  CK_FUNCTION_LIST_PTR functions_;
  bool finalize_;
};

constexpr size_t kMaxPooledSessions = 64;

// One token: its slot, the login, and a pool of sessions so each signing thread has its own.
// One session is held open for the token's life because closing a token's last session
// logs the application out.
class Token {
 public:
  Token(std::shared_ptr<Module> module, CK_SLOT_ID slot, std::string label)
      : module_(std::move(module)), slot_(slot), label_(std::move(label)),
        pool_(kMaxPooledSessions) {}

  ~Token() {
    while (auto session = pool_.TryPop()) f()->C_CloseSession(*session);
    // No C_Logout: the login belongs to the whole process, and another store may still use
    // the token; closing the process's last session on it logs out anyway.
    if (anchor_ != CK_INVALID_HANDLE) f()->C_CloseSession(anchor_);
  }

  CK_FUNCTION_LIST* f() const { return module_->f(); }
  const std::string& label() const { return label_; }

  Status OpenAndLogin(const std::string& pin) {
    CK_RV rv = f()->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &anchor_);
    if (rv != CKR_OK) return CkError(rv, "opening a session on token '" + label_ + "'");
    rv = f()->C_Login(anchor_, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin.data())),
                      pin.size());
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
      return CkError(rv, "logging in to token '" + label_ + "' with the user PIN");
    }
    return Status::Ok();
  }

  // The session kept for key management; callers hold management_mutex.
  CK_SESSION_HANDLE anchor() const { return anchor_; }
  std::mutex& management_mutex() { return management_mutex_; }

  Result<CK_SESSION_HANDLE> AcquireSession() {
    if (auto session = pool_.TryPop()) return *session;
    CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
    const CK_RV rv = f()->C_OpenSession(slot_, CKF_SERIAL_SESSION, nullptr, nullptr, &session);
    if (rv != CKR_OK) return CkError(rv, "opening a signing session on token '" + label_ + "'");
    return session;
  }

  void ReleaseSession(CK_SESSION_HANDLE session) {
    if (!pool_.TryPush(session)) f()->C_CloseSession(session);
  }

 private:
  std::shared_ptr<Module> module_;
  CK_SLOT_ID slot_;
  std::string label_;
  CK_SESSION_HANDLE anchor_ = CK_INVALID_HANDLE;
  std::mutex management_mutex_;
  MpmcQueue<CK_SESSION_HANDLE> pool_;
};

// A session borrowed for one operation and given back even on error paths.
class SessionLease {
 public:
  SessionLease(Token& token, CK_SESSION_HANDLE session) : token_(token), session_(session) {}
  ~SessionLease() { token_.ReleaseSession(session_); }
  SessionLease(const SessionLease&) = delete;
  SessionLease& operator=(const SessionLease&) = delete;
  CK_SESSION_HANDLE get() const { return session_; }

 private:
  Token& token_;
  CK_SESSION_HANDLE session_;
};

// The DER DigestInfo prefix for SHA-256 (RFC 8017, section 9.2 note 1): CKM_RSA_PKCS signs
// exactly what it is given, so the caller wraps the digest.
constexpr uint8_t kSha256DigestInfoPrefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                               0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                               0x01, 0x05, 0x00, 0x04, 0x20};

class Pkcs11Signer final : public Signer {
 public:
  Pkcs11Signer(std::shared_ptr<Token> token, CK_OBJECT_HANDLE private_key, KeyType type,
               EvpPkeyPtr public_key)
      : token_(std::move(token)), private_key_(private_key), type_(type),
        public_key_(std::move(public_key)) {}

  KeyType key_type() const override { return type_; }
  EVP_PKEY* public_key() const override { return public_key_.get(); }
  CK_OBJECT_HANDLE private_handle() const { return private_key_; }

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

    SIGIL_ASSIGN_OR_RETURN(CK_SESSION_HANDLE handle, token_->AcquireSession());
    SessionLease session(*token_, handle);
    AssertNotOnEventLoop("PKCS#11 Sign");
    CK_RV rv = token_->f()->C_SignInit(session.get(), &mechanism, private_key_);
    if (rv != CKR_OK) return CkError(rv, "starting a signature on token '" + token_->label() + "'");
    Bytes signature(type_ == KeyType::kRsa2048 ? 256 : 2 * EcdsaFieldSize(type_));
    CK_ULONG length = signature.size();
    rv = token_->f()->C_Sign(session.get(), input.data(), input.size(), signature.data(), &length);
    if (rv != CKR_OK) return CkError(rv, "signing on token '" + token_->label() + "'");
    signature.resize(length);
    if (type_ == KeyType::kRsa2048) return signature;
    return EcdsaRawToDer(signature);  // PKCS#11 returns r||s; X.509 wants DER
  }

 private:
  std::shared_ptr<Token> token_;
  CK_OBJECT_HANDLE private_key_;
  KeyType type_;
  EvpPkeyPtr public_key_;
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
    return FindLocked(name);
  }

  Status DeleteLocked(const std::string& name) override {
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

  Result<std::shared_ptr<Signer>> FindLocked(const std::string& label) override {
    CK_FUNCTION_LIST* f = token_->f();
    const CK_SESSION_HANDLE session = token_->anchor();
    SIGIL_ASSIGN_OR_RETURN(auto privates, FindObjects(f, session, CKO_PRIVATE_KEY, label));
    if (privates.empty()) {
      return NotFoundError("token '" + token_->label() + "' holds no key '" + label + "'");
    }
    if (privates.size() > 1) {
      return Status(Code::kFailedPrecondition,
                    "token '" + token_->label() + "' holds several private keys labelled '" + label + "'");
    }
    SIGIL_ASSIGN_OR_RETURN(auto publics, FindObjects(f, session, CKO_PUBLIC_KEY, label));
    if (publics.size() != 1) {
      return Status(Code::kFailedPrecondition,
                    "token '" + token_->label() + "' has " + std::to_string(publics.size()) +
                        " public keys labelled '" + label + "', expected one");
    }
    SIGIL_ASSIGN_OR_RETURN(Bytes key_type_bytes, GetAttribute(f, session, privates[0], CKA_KEY_TYPE, "CKA_KEY_TYPE"));
    CK_KEY_TYPE key_type = 0;
    std::memcpy(&key_type, key_type_bytes.data(), std::min(key_type_bytes.size(), sizeof(key_type)));
    EvpPkeyPtr public_key;
    KeyType type;
    if (key_type == CKK_EC) {
      SIGIL_ASSIGN_OR_RETURN(Bytes params, GetAttribute(f, session, publics[0], CKA_EC_PARAMS, "CKA_EC_PARAMS"));
      SIGIL_ASSIGN_OR_RETURN(type, CurveFromOid(params));
      SIGIL_ASSIGN_OR_RETURN(Bytes point, GetAttribute(f, session, publics[0], CKA_EC_POINT, "CKA_EC_POINT"));
      SIGIL_ASSIGN_OR_RETURN(public_key, EcPublicKeyFromPoint(type == KeyType::kEcP384 ? "P-384" : "P-256",
                                                              UnwrapEcPoint(point)));
    } else if (key_type == CKK_RSA) {
      SIGIL_ASSIGN_OR_RETURN(Bytes modulus, GetAttribute(f, session, publics[0], CKA_MODULUS, "CKA_MODULUS"));
      SIGIL_ASSIGN_OR_RETURN(Bytes exponent, GetAttribute(f, session, publics[0], CKA_PUBLIC_EXPONENT, "CKA_PUBLIC_EXPONENT"));
      SIGIL_ASSIGN_OR_RETURN(public_key, RsaPublicKeyFromParts(modulus, exponent));
      SIGIL_ASSIGN_OR_RETURN(type, KeyTypeOf(public_key.get()));
    } else {
      return InvalidArgumentError("token key '" + label + "' is neither EC nor RSA");
    }
    return std::shared_ptr<Signer>(std::make_shared<Pkcs11Signer>(token_, privates[0], type, std::move(public_key)));
  }

 private:
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
  SIGIL_ASSIGN_OR_RETURN(CK_SLOT_ID slot, FindSlot(module->f(), config, &label));
  auto token = std::make_shared<Token>(std::move(module), slot, label);
  Status login = token->OpenAndLogin(pin);
  OPENSSL_cleanse(pin.data(), pin.size());
  SIGIL_RETURN_IF_ERROR(login);
  return std::unique_ptr<KeyStore>(std::make_unique<Pkcs11KeyStore>(std::move(token)));
}

}  // namespace sigil::hw
