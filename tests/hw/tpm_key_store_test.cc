// What only the TPM store promises: keys outlive the TPM process restarting, a key blob from
// another TPM is refused, and an unreachable TPM is named.
#include <gtest/gtest.h>

#include "hw/key_store.h"
#include "tests/support/hw_backends.h"

namespace sigil::hw {
namespace {

using sigil::testing::TempDir;

std::string TpmUri(const std::string& tcti, const std::filesystem::path& data_dir) {
  return "tpm:" + tcti + "?data-dir=" + data_dir.string();
}

TEST(TpmKeyStoreTest, KeySurvivesTpmRestartAndStoreReopen) {
  TempDir dir("sigil-tpm-store");
  const std::string uri = TpmUri(Backends()->tpm->tcti(), dir / "keys");
  EvpPkeyPtr public_key;
  {
    auto store = OpenKeyStore(uri);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto signer = (*store)->CreateKey("ca-key", KeyType::kEcP256);
    ASSERT_TRUE(signer.ok()) << signer.status().ToString();
    public_key.reset(EVP_PKEY_dup((*signer)->public_key()));
    struct stat st {};
    ASSERT_EQ(::stat((dir / "keys" / "ca-key.tpmkey").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  ASSERT_TRUE(Backends()->tpm->Restart().ok());

  auto store = OpenKeyStore(uri);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto signer = (*store)->FindKey("ca-key");
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  EXPECT_EQ(EVP_PKEY_eq(public_key.get(), (*signer)->public_key()), 1);
  auto signature = (*signer)->SignMessage(SignatureScheme::kES256, AsBytes("after restart"));
  ASSERT_TRUE(signature.ok()) << signature.status().ToString();
  EXPECT_TRUE(Verify(public_key.get(), SignatureScheme::kES256, AsBytes("after restart"), *signature));
}

// The store stays open while the TPM restarts: its connection breaks and the TPM forgets what
// was loaded, and the same signer reconnects, loads its blob again and signs.
TEST(TpmKeyStoreTest, ASignerReconnectsAfterTheTpmRestartsUnderIt) {
  TempDir dir("sigil-tpm-store");
  auto store = OpenKeyStore(TpmUri(Backends()->tpm->tcti(), dir / "keys"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto signer = (*store)->CreateKey("heals", KeyType::kEcP256);
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  ASSERT_TRUE((*signer)->SignMessage(SignatureScheme::kES256, AsBytes("before")).ok());

  ASSERT_TRUE(Backends()->tpm->Restart().ok());
  auto signature = (*signer)->SignMessage(SignatureScheme::kES256, AsBytes("after restart"));
  ASSERT_TRUE(signature.ok()) << signature.status().ToString();
  EXPECT_TRUE(Verify((*signer)->public_key(), SignatureScheme::kES256, AsBytes("after restart"), *signature));
  // Key management goes on over the new connection too.
  EXPECT_TRUE((*store)->CreateKey("after-restart", KeyType::kEcP256).ok());
}

TEST(TpmKeyStoreTest, ManyKeysShareTheTpmsFewObjectSlots) {
  TempDir dir("sigil-tpm-store");
  auto store = OpenKeyStore(TpmUri(Backends()->tpm->tcti(), dir / "keys"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::vector<std::shared_ptr<Signer>> signers;
  for (int i = 0; i < 5; ++i) {
    auto signer = (*store)->CreateKey("key" + std::to_string(i), KeyType::kEcP256);
    ASSERT_TRUE(signer.ok()) << i << ": " << signer.status().ToString();
    signers.push_back(*signer);
  }
  for (int round = 0; round < 2; ++round) {
    for (auto& signer : signers) {
      auto signature = signer->SignMessage(SignatureScheme::kES256, AsBytes("round"));
      ASSERT_TRUE(signature.ok()) << signature.status().ToString();
      EXPECT_TRUE(Verify(signer->public_key(), SignatureScheme::kES256, AsBytes("round"), *signature));
    }
  }
}

TEST(TpmKeyStoreTest, BlobFromAnotherTpmIsRefused) {
  TempDir dir("sigil-tpm-other");
  auto other = sigil::testing::Swtpm::Start(dir / "state", dir / "logs");
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  {
    auto store = OpenKeyStore(TpmUri((*other)->tcti(), dir / "keys"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->CreateKey("foreign", KeyType::kEcP256).ok());
  }
  other->reset();

  auto store = OpenKeyStore(TpmUri(Backends()->tpm->tcti(), dir / "keys"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto signer = (*store)->FindKey("foreign");
  ASSERT_FALSE(signer.ok());
  EXPECT_NE(signer.status().message().find("loading a key blob"), std::string::npos)
      << signer.status().ToString();
}

TEST(TpmKeyStoreTest, DamagedBlobIsNamed) {
  TempDir dir("sigil-tpm-store");
  std::filesystem::create_directories(dir / "keys");
  sigil::testing::WriteFile(dir / "keys" / "broken.tpmkey", "not a key blob");
  auto store = OpenKeyStore(TpmUri(Backends()->tpm->tcti(), dir / "keys"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto signer = (*store)->FindKey("broken");
  ASSERT_EQ(signer.status().code(), Code::kDataLoss);
  EXPECT_NE(signer.status().message().find("broken.tpmkey"), std::string::npos);
}

TEST(TpmKeyStoreTest, UnreachableTpmIsNamed) {
  TempDir dir("sigil-tpm-store");
  const int port = sigil::testing::FreeLoopbackPort(2);
  auto store = OpenKeyStore(TpmUri("swtpm:host=127.0.0.1,port=" + std::to_string(port), dir / "keys"));
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().ToString().find(std::to_string(port)), std::string::npos)
      << store.status().ToString();
}

TEST(TpmKeyStoreTest, AuthValueProtectsTheKey) {
  TempDir dir("sigil-tpm-store");
  sigil::testing::WriteFile(dir / "auth", "s3cret\n");
  sigil::testing::WriteFile(dir / "wrong-auth", "guess\n");
  const std::string base = TpmUri(Backends()->tpm->tcti(), dir / "keys");
  {
    auto store = OpenKeyStore(base + "&auth-file=" + (dir / "auth").string());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto signer = (*store)->CreateKey("guarded", KeyType::kEcP256);
    ASSERT_TRUE(signer.ok()) << signer.status().ToString();
    auto signature = (*signer)->SignMessage(SignatureScheme::kES256, AsBytes("m"));
    ASSERT_TRUE(signature.ok()) << signature.status().ToString();
  }
  auto store = OpenKeyStore(base + "&auth-file=" + (dir / "wrong-auth").string());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto signer = (*store)->FindKey("guarded");
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  auto signature = (*signer)->SignMessage(SignatureScheme::kES256, AsBytes("m"));
  ASSERT_FALSE(signature.ok());
  EXPECT_EQ(signature.status().code(), Code::kPermissionDenied) << signature.status().ToString();
}

}  // namespace
}  // namespace sigil::hw
