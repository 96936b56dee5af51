#include "tests/support/softhsm.h"

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <sys/stat.h>

#include <cstdlib>

namespace sigil::testing {

std::string SoftHsmTokenInfo::uri() const {
  return "pkcs11:token=" + label + "?module-path=" + kSoftHsmModule +
         "&pin-source=file:" + pin_file.string();
}

Result<std::unique_ptr<SoftHsm>> SoftHsm::Create() {
  auto hsm = std::unique_ptr<SoftHsm>(new SoftHsm());
  hsm->dir_ = std::make_unique<TempDir>("sigil-softhsm");
  std::filesystem::create_directory(*hsm->dir_ / "tokens");
  hsm->conf_path_ = *hsm->dir_ / "softhsm2.conf";
  WriteFile(hsm->conf_path_, "directories.tokendir = " + (*hsm->dir_ / "tokens").string() +
                                 "\nobjectstore.backend = file\nlog.level = ERROR\n"
                                 "slots.removable = false\n");
  ::setenv("SOFTHSM2_CONF", hsm->conf_path_.c_str(), 1);
  return hsm;
}

SoftHsm::~SoftHsm() { ::unsetenv("SOFTHSM2_CONF"); }

Result<SoftHsmTokenInfo> SoftHsm::InitToken(const std::string& label, const std::string& pin,
                                            const std::string& so_pin) {
  ProcessOptions options;
  options.env["SOFTHSM2_CONF"] = conf_path_.string();
  SIGIL_ASSIGN_OR_RETURN(ProcessOutput out,
                         RunProcess({"softhsm2-util", "--init-token", "--free", "--label", label,
                                     "--so-pin", so_pin, "--pin", pin},
                                    options));
  if (out.exit_code != 0) {
    return Status(Code::kInternal, "softhsm2-util --init-token failed: " + out.err + out.out);
  }
  SoftHsmTokenInfo info{label, pin, so_pin, *dir_ / (label + ".pin")};
  WriteFile(info.pin_file, pin + "\n");
  ::chmod(info.pin_file.c_str(), 0600);
  return info;
}

namespace {

Status CkFailed(CK_RV rv, const std::string& what) {
  return Status(Code::kInternal, what + " failed: CKR 0x" + std::to_string(rv));
}

// A label as PKCS#11 stores it in CK_TOKEN_INFO: padded with spaces to 32 bytes.
bool TokenLabelIs(const CK_UTF8CHAR (&padded)[32], const std::string& label) {
  std::string text(reinterpret_cast<const char*>(padded), sizeof(padded));
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text == label;
}

Result<CK_SLOT_ID> SlotOfToken(CK_FUNCTION_LIST* p11, const std::string& label) {
  CK_ULONG count = 0;
  if (CK_RV rv = p11->C_GetSlotList(CK_TRUE, nullptr, &count); rv != CKR_OK) return CkFailed(rv, "C_GetSlotList");
  std::vector<CK_SLOT_ID> slots(count);
  if (CK_RV rv = p11->C_GetSlotList(CK_TRUE, slots.data(), &count); rv != CKR_OK) return CkFailed(rv, "C_GetSlotList");
  for (CK_ULONG i = 0; i < count; ++i) {
    CK_TOKEN_INFO info{};
    if (p11->C_GetTokenInfo(slots[i], &info) == CKR_OK && TokenLabelIs(info.label, label)) return slots[i];
  }
  return NotFoundError("no SoftHSM token labelled " + label);
}

// Sets CKA_SIGN on the matching private keys in a logged-in session; how many there were.
Result<int> SetSignOnKeys(CK_FUNCTION_LIST* p11, CK_SESSION_HANDLE session, const std::string& prefix, bool allowed) {
  CK_OBJECT_CLASS private_key = CKO_PRIVATE_KEY;
  CK_ATTRIBUTE wanted{CKA_CLASS, &private_key, sizeof(private_key)};
  if (CK_RV rv = p11->C_FindObjectsInit(session, &wanted, 1); rv != CKR_OK) return CkFailed(rv, "C_FindObjectsInit");
  std::vector<CK_OBJECT_HANDLE> keys(64);
  CK_ULONG found = 0;
  CK_RV rv = p11->C_FindObjects(session, keys.data(), keys.size(), &found);
  p11->C_FindObjectsFinal(session);
  if (rv != CKR_OK) return CkFailed(rv, "C_FindObjects");
  int changed = 0;
  for (CK_ULONG i = 0; i < found; ++i) {
    char label[256] = {};
    CK_ATTRIBUTE read{CKA_LABEL, label, sizeof(label) - 1};
    if (p11->C_GetAttributeValue(session, keys[i], &read, 1) != CKR_OK) continue;
    if (std::string(label, read.ulValueLen).rfind(prefix, 0) != 0) continue;
    CK_BBOOL sign = allowed ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE write{CKA_SIGN, &sign, sizeof(sign)};
    if (CK_RV set = p11->C_SetAttributeValue(session, keys[i], &write, 1); set != CKR_OK) {
      return CkFailed(set, "C_SetAttributeValue(CKA_SIGN)");
    }
    ++changed;
  }
  return changed;
}

}  // namespace

Status SoftHsm::SetSigningAllowed(const std::string& label, const std::string& pin,
                                  const std::string& key_label_prefix, bool allowed) {
  ::setenv("SOFTHSM2_CONF", conf_path_.c_str(), 1);
  // Never unloaded: a Cryptoki module that links OpenSSL is not safe to unload from a process
  // that goes on using OpenSSL.
  void* module = ::dlopen(kSoftHsmModule, RTLD_NOW | RTLD_LOCAL);
  if (module == nullptr) return Status(Code::kInternal, std::string("dlopen SoftHSM: ") + ::dlerror());
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(module, "C_GetFunctionList"));
  CK_FUNCTION_LIST* p11 = nullptr;
  if (get_list == nullptr || get_list(&p11) != CKR_OK) return Status(Code::kInternal, "SoftHSM has no C_GetFunctionList");
  if (CK_RV rv = p11->C_Initialize(nullptr); rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    return CkFailed(rv, "C_Initialize");
  }
  Result<int> changed = [&]() -> Result<int> {
    SIGIL_ASSIGN_OR_RETURN(CK_SLOT_ID slot, SlotOfToken(p11, label));
    CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
    if (CK_RV rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session); rv != CKR_OK) {
      return CkFailed(rv, "C_OpenSession");
    }
    auto pin_bytes = reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin.data()));
    Result<int> set = CkFailed(CKR_GENERAL_ERROR, "C_Login");
    if (CK_RV rv = p11->C_Login(session, CKU_USER, pin_bytes, pin.size()); rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
      set = SetSignOnKeys(p11, session, key_label_prefix, allowed);
    }
    p11->C_CloseSession(session);
    return set;
  }();
  p11->C_Finalize(nullptr);
  if (!changed.ok()) return changed.status();
  if (*changed == 0) return NotFoundError("no private key labelled " + key_label_prefix + "* in token " + label);
  return Status::Ok();
}

}  // namespace sigil::testing
