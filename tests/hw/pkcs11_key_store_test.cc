// What only the PKCS#11 store promises: the private key stays in the token, and each way of
// pointing at the wrong token, module or PIN is named in the error.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>

#include <cstdlib>

#include "hw/key_store.h"
#include "tests/support/hw_backends.h"

namespace sigil::hw {
namespace {

using sigil::testing::kSoftHsmModule;

// Talks to the token through Cryptoki directly, as an attacker with the PIN would.
class RawToken {
 public:
  RawToken() {
    handle_ = ::dlopen(kSoftHsmModule, RTLD_NOW | RTLD_LOCAL);
    EXPECT_NE(handle_, nullptr);
    auto get_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(handle_, "C_GetFunctionList"));
    EXPECT_EQ(get_list(&f_), CKR_OK);
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    const CK_RV rv = f_->C_Initialize(&args);
    EXPECT_TRUE(rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED);
    finalize_ = rv == CKR_OK;
    CK_SLOT_ID slots[16];
    CK_ULONG count = 16;
    EXPECT_EQ(f_->C_GetSlotList(CK_TRUE, slots, &count), CKR_OK);
    for (CK_ULONG i = 0; i < count; ++i) {
      CK_TOKEN_INFO info{};
      f_->C_GetTokenInfo(slots[i], &info);
      if (std::string(reinterpret_cast<char*>(info.label), 32).rfind(Backends()->ca_token.label + " ", 0) == 0) {
        slot_ = slots[i];
        EXPECT_EQ(f_->C_OpenSession(slots[i], CKF_SERIAL_SESSION, nullptr, nullptr, &session_), CKR_OK);
      }
    }
    const std::string& pin = Backends()->ca_token.pin;
    const CK_RV login = f_->C_Login(session_, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin.data())), pin.size());
    EXPECT_TRUE(login == CKR_OK || login == CKR_USER_ALREADY_LOGGED_IN);
  }
  ~RawToken() {
    if (session_ != CK_INVALID_HANDLE) f_->C_CloseSession(session_);
    if (finalize_) f_->C_Finalize(nullptr);
    ::dlclose(handle_);
  }

  CK_OBJECT_HANDLE FindPrivateKey(const std::string& label) {
    CK_OBJECT_CLASS object_class = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE query[] = {{CKA_CLASS, &object_class, sizeof(object_class)},
                            {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
    CK_OBJECT_HANDLE object = CK_INVALID_HANDLE;
    CK_ULONG count = 0;
    f_->C_FindObjectsInit(session_, query, 2);
    f_->C_FindObjects(session_, &object, 1, &count);
    f_->C_FindObjectsFinal(session_);
    return count == 1 ? object : CK_INVALID_HANDLE;
  }

  CK_FUNCTION_LIST* f() { return f_; }
  CK_SESSION_HANDLE session() { return session_; }

  // Closes every session this process has on the token, the key store's too, which logs the
  // process out: what a token reset does to a running serverd.
  void CloseAllSessions() {
    EXPECT_EQ(f_->C_CloseAllSessions(slot_), CKR_OK);
    session_ = CK_INVALID_HANDLE;
  }

 private:
  void* handle_ = nullptr;
  CK_FUNCTION_LIST* f_ = nullptr;
  CK_SLOT_ID slot_ = 0;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
  bool finalize_ = false;
};

TEST(Pkcs11KeyStoreTest, PrivateKeyCannotBeReadOut) {
  auto store = OpenKeyStore(Backends()->ca_token.uri());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->CreateKey("sealed", KeyType::kEcP256).ok());

  RawToken token;
  const CK_OBJECT_HANDLE key = token.FindPrivateKey("sealed");
  ASSERT_NE(key, CK_INVALID_HANDLE);

  uint8_t value[256];
  CK_ATTRIBUTE value_attribute{CKA_VALUE, value, sizeof(value)};
  const CK_RV read = token.f()->C_GetAttributeValue(token.session(), key, &value_attribute, 1);
  EXPECT_EQ(read, CKR_ATTRIBUTE_SENSITIVE);
  EXPECT_EQ(value_attribute.ulValueLen, CK_UNAVAILABLE_INFORMATION);

  CK_BBOOL extractable = CK_TRUE, sensitive = CK_FALSE, on_token = CK_FALSE;
  CK_ATTRIBUTE flags[] = {{CKA_EXTRACTABLE, &extractable, sizeof(extractable)},
                          {CKA_SENSITIVE, &sensitive, sizeof(sensitive)},
                          {CKA_TOKEN, &on_token, sizeof(on_token)}};
  ASSERT_EQ(token.f()->C_GetAttributeValue(token.session(), key, flags, 3), CKR_OK);
  EXPECT_EQ(extractable, CK_FALSE);
  EXPECT_EQ(sensitive, CK_TRUE);
  EXPECT_EQ(on_token, CK_TRUE);

  EXPECT_TRUE((*store)->DeleteKey("sealed").ok());
}

bool SignsAndVerifies(Signer& signer) {
  auto signature = signer.SignMessage(SignatureScheme::kES256, AsBytes("heal"));
  if (!signature.ok()) {
    ADD_FAILURE() << signature.status().ToString();
    return false;
  }
  return Verify(signer.public_key(), SignatureScheme::kES256, AsBytes("heal"), *signature);
}

TEST(Pkcs11KeyStoreTest, SignerHealsWhenTheTokenForgetsItsSessionsAndLogin) {
  auto store = OpenKeyStore(Backends()->ca_token.uri());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto signer = (*store)->CreateKey("heals", KeyType::kEcP256);
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  ASSERT_TRUE(SignsAndVerifies(**signer));

  RawToken token;
  token.CloseAllSessions();
  EXPECT_TRUE(SignsAndVerifies(**signer)) << "the signer did not reopen its session and log in again";
  EXPECT_TRUE(SignsAndVerifies(**signer));
  // Key management runs on the reopened anchor session.
  auto found = (*store)->FindKey("heals");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_TRUE(SignsAndVerifies(**found));
  EXPECT_TRUE((*store)->DeleteKey("heals").ok());
}

TEST(Pkcs11KeyStoreTest, HealingRefusesAnotherKeyUnderTheSameLabel) {
  auto store = OpenKeyStore(Backends()->ca_token.uri());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto signer = (*store)->CreateKey("swapped", KeyType::kEcP256);
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  ASSERT_TRUE(SignsAndVerifies(**signer));

  auto other_store = OpenKeyStore(Backends()->ca_token.uri());
  ASSERT_TRUE(other_store.ok());
  ASSERT_TRUE((*other_store)->DeleteKey("swapped").ok());
  ASSERT_TRUE((*other_store)->CreateKey("swapped", KeyType::kEcP256).ok());

  auto signature = (*signer)->SignMessage(SignatureScheme::kES256, AsBytes("heal"));
  ASSERT_FALSE(signature.ok()) << "signed with a key that replaced the signer's";
  EXPECT_EQ(signature.status().code(), Code::kUnavailable);
  EXPECT_NE(signature.status().message().find("no longer the key it was"), std::string::npos)
      << signature.status().ToString();
  // Within the back-off the token is not asked again.
  auto again = (*signer)->SignMessage(SignatureScheme::kES256, AsBytes("heal"));
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("next attempt in"), std::string::npos) << again.status().ToString();
  EXPECT_TRUE((*other_store)->DeleteKey("swapped").ok());
}

TEST(Pkcs11KeyStoreTest, WrongPinIsRefusedByName) {
  const auto& token = Backends()->ca_token;
  const auto pin_file = *Backends()->dir / "wrong.pin";
  sigil::testing::WriteFile(pin_file, "0000\n");
  auto store = OpenKeyStore("pkcs11:token=" + token.label + "?module-path=" + kSoftHsmModule +
                            "&pin-source=file:" + pin_file.string());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kPermissionDenied);
  EXPECT_NE(store.status().message().find("CKR_PIN_INCORRECT"), std::string::npos)
      << store.status().ToString();
  EXPECT_EQ(store.status().message().find("0000"), std::string::npos) << "the PIN leaked";
}

TEST(Pkcs11KeyStoreTest, PinFromEnvironment) {
  ::setenv("SIGIL_TEST_TOKEN_PIN", Backends()->ca_token.pin.c_str(), 1);
  auto store = OpenKeyStore("pkcs11:token=" + Backends()->ca_token.label + "?module-path=" +
                            kSoftHsmModule + "&pin-source=env:SIGIL_TEST_TOKEN_PIN");
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  ::unsetenv("SIGIL_TEST_TOKEN_PIN");
  auto unset = OpenKeyStore("pkcs11:token=" + Backends()->ca_token.label + "?module-path=" +
                            kSoftHsmModule + "&pin-source=env:SIGIL_TEST_TOKEN_PIN");
  ASSERT_FALSE(unset.ok());
  EXPECT_NE(unset.status().message().find("SIGIL_TEST_TOKEN_PIN"), std::string::npos);
}

TEST(Pkcs11KeyStoreTest, MissingModuleIsNamed) {
  auto store = OpenKeyStore("pkcs11:token=x?module-path=/nonexistent/libnothing.so&pin-source=file:" +
                            Backends()->ca_token.pin_file.string());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("/nonexistent/libnothing.so"), std::string::npos);
}

TEST(Pkcs11KeyStoreTest, UnknownTokenIsNamed) {
  auto store = OpenKeyStore(std::string("pkcs11:token=no-such-token?module-path=") + kSoftHsmModule +
                            "&pin-source=file:" + Backends()->ca_token.pin_file.string());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kNotFound);
  EXPECT_NE(store.status().message().find("no-such-token"), std::string::npos);
}

TEST(Pkcs11KeyStoreTest, PinInTheUriIsRefused) {
  auto store = OpenKeyStore(std::string("pkcs11:token=a?module-path=") + kSoftHsmModule + "&pin-value=1234");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("pin-source"), std::string::npos);
}

}  // namespace
}  // namespace sigil::hw
