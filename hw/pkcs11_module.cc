#include "hw/pkcs11_module.h"

#include <dlfcn.h>
#include <openssl/objects.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

namespace sigil::hw::pkcs11 {
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

// Token labels and serials are fixed-width fields padded with spaces.
std::string PaddedField(const CK_UTF8CHAR* field, size_t size) {
  std::string text(reinterpret_cast<const char*>(field), size);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
  return text;
}

}  // namespace

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

Result<std::shared_ptr<Module>> Module::Load(const std::filesystem::path& path) {
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

Module::~Module() {
  if (finalize_ && initialized()) functions_->C_Finalize(nullptr);
  ::dlclose(handle_);
}

Status Module::ReinitializeExclusive() {
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

std::span<const uint8_t> UnwrapEcPoint(std::span<const uint8_t> value) {
  if (value.size() > 2 && value[0] == 0x04 && value[1] == value.size() - 2) return value.subspan(2);
  if (value.size() > 3 && value[0] == 0x04 && value[1] == 0x81 && value[2] == value.size() - 3) {
    return value.subspan(3);
  }
  return value;
}

}  // namespace sigil::hw::pkcs11
