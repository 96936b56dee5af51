// Opening stores from URIs, and the soft store's files.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "hw/key_store.h"
#include "tests/support/hw_backends.h"

namespace sigil::hw {
namespace {

TEST(KeyStoreUriTest, ParsesEachBackend) {
  auto soft = ParseKeyStoreUri("soft:/var/lib/sigil/keys");
  ASSERT_TRUE(soft.ok());
  EXPECT_EQ(soft->kind, KeyStoreKind::kSoft);
  EXPECT_EQ(soft->key_dir, "/var/lib/sigil/keys");

  auto pkcs11 = ParseKeyStoreUri(
      "pkcs11:token=sigil%20ca;serial=abc?module-path=/usr/lib/m.so&pin-source=file:/etc/pin");
  ASSERT_TRUE(pkcs11.ok()) << pkcs11.status().ToString();
  EXPECT_EQ(pkcs11->kind, KeyStoreKind::kPkcs11);
  EXPECT_EQ(pkcs11->token_label, "sigil ca");
  EXPECT_EQ(pkcs11->token_serial, "abc");
  EXPECT_EQ(pkcs11->module_path, "/usr/lib/m.so");
  EXPECT_EQ(pkcs11->pin_file, "/etc/pin");

  auto tpm = ParseKeyStoreUri("tpm:swtpm:host=127.0.0.1,port=2321?data-dir=/d&auth-file=/a");
  ASSERT_TRUE(tpm.ok()) << tpm.status().ToString();
  EXPECT_EQ(tpm->kind, KeyStoreKind::kTpm);
  EXPECT_EQ(tpm->tcti, "swtpm:host=127.0.0.1,port=2321");
  EXPECT_EQ(tpm->data_dir, "/d");
  EXPECT_EQ(tpm->auth_file, "/a");

  auto device = ParseKeyStoreUri("tpm:device:/dev/tpmrm0?data-dir=/d");
  ASSERT_TRUE(device.ok());
  EXPECT_EQ(device->tcti, "device:/dev/tpmrm0");
}

TEST(KeyStoreUriTest, NamesWhatIsWrong) {
  struct Case {
    std::string uri;
    std::string mentions;
  };
  for (const Case& c : std::vector<Case>{
           {"hsm:whatever", "unknown key store 'hsm'"},
           {"noscheme", "has no scheme"},
           {"pkcs11:label=x", "unknown pkcs11 URI attribute 'label'"},
           {"pkcs11:token=a;token=b", "'token' is given twice"},
           {"pkcs11:token=a?module-path=/m&colour=red", "'colour'"},
           {"pkcs11:token=%zz", "bad percent escape"},
           {"pkcs11:token", "is not name=value"},
           {"tpm:device:/dev/tpmrm0?datadir=/x", "'datadir'"},
       }) {
    auto parsed = ParseKeyStoreUri(c.uri);
    ASSERT_FALSE(parsed.ok()) << c.uri;
    EXPECT_EQ(parsed.status().code(), Code::kInvalidArgument) << c.uri;
    EXPECT_NE(parsed.status().message().find(c.mentions), std::string::npos)
        << c.uri << " -> " << parsed.status().message();
  }
}

TEST(KeyStoreUriTest, MissingSettingsAreNamedAtOpen) {
  EXPECT_NE(OpenKeyStore("pkcs11:token=a").status().message().find("module_path"), std::string::npos);
  EXPECT_NE(OpenKeyStore("pkcs11:?module-path=/m").status().message().find("token_label"),
            std::string::npos);
  EXPECT_NE(OpenKeyStore("pkcs11:token=a?module-path=/m").status().message().find("PIN"),
            std::string::npos);
  EXPECT_NE(OpenKeyStore("tpm:?data-dir=/x").status().message().find("tcti"), std::string::npos);
  EXPECT_NE(OpenKeyStore("tpm:device:/dev/tpmrm0").status().message().find("data_dir"),
            std::string::npos);
  auto opened = OpenKeyStore("tpm:device:/dev/tpmrm0");
  EXPECT_NE(opened.status().ToString().find("opening tpm key store"), std::string::npos);
}

TEST(KeyStoreLabelTest, LabelsAreSafeFileNames) {
  EXPECT_TRUE(ValidateKeyLabel("ca-2026.11_a").ok());
  EXPECT_FALSE(ValidateKeyLabel("").ok());
  EXPECT_FALSE(ValidateKeyLabel(".hidden").ok());
  EXPECT_FALSE(ValidateKeyLabel(std::string(65, 'a')).ok());
  auto slash = ValidateKeyLabel("a/b");
  ASSERT_FALSE(slash.ok());
  EXPECT_NE(slash.message().find("'/'"), std::string::npos);
}

TEST(SoftKeyStoreTest, KeyFilesAreOwnerOnly) {
  sigil::testing::TempDir dir("sigil-soft");
  auto store = OpenKeyStore("soft:" + (dir / "keys").string());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->CreateKey("agent", KeyType::kEcP256).ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir / "keys" / "agent.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir / "keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_FALSE(std::filesystem::exists(dir / "keys" / "agent.pem.tmp"));
}

TEST(SoftKeyStoreTest, DamagedKeyFileIsNamed) {
  sigil::testing::TempDir dir("sigil-soft");
  std::filesystem::create_directories(dir / "keys");
  sigil::testing::WriteFile(dir / "keys" / "bad.pem", "-----BEGIN PRIVATE KEY-----\nnope\n");
  auto store = OpenKeyStore("soft:" + (dir / "keys").string());
  ASSERT_TRUE(store.ok());
  auto key = (*store)->FindKey("bad");
  ASSERT_EQ(key.status().code(), Code::kDataLoss);
  EXPECT_NE(key.status().message().find("bad.pem"), std::string::npos);
}

}  // namespace
}  // namespace sigil::hw
