// Every key store backend for real: software keys, a SoftHSM2 token and a swtpm TPM, each
// signature checked by OpenSSL with the public key the store returned.
#include "hw/key_store.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sys/stat.h>

#include <atomic>
#include <thread>

#include "tests/support/hw_backends.h"

namespace sigil::hw {
namespace {

using sigil::testing::TempDir;

struct BackendCase {
  std::string name;
  // Makes the URI for a store; `dir` is a fresh folder the store may use.
  std::function<std::string(const std::filesystem::path& dir)> uri;
  bool persistent;
};

class KeyStoreTest : public ::testing::TestWithParam<BackendCase> {
 protected:
  void SetUp() override {
    store_dir_ = std::make_unique<TempDir>("sigil-store");
    uri_ = GetParam().uri(store_dir_->path());
    store_ = Open();
    ASSERT_NE(store_, nullptr);
    label_ = "k" + std::to_string(counter_++);
  }

  std::unique_ptr<KeyStore> Open() {
    auto store = OpenKeyStore(uri_);
    EXPECT_TRUE(store.ok()) << uri_ << ": " << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }

  static inline int counter_ = 0;
  std::unique_ptr<TempDir> store_dir_;
  std::string uri_;
  std::unique_ptr<KeyStore> store_;
  std::string label_;
};

TEST_P(KeyStoreTest, EveryKeyTypeSignsInBothForms) {
  for (KeyType type : {KeyType::kEcP256, KeyType::kEcP384, KeyType::kRsa2048}) {
    SCOPED_TRACE(std::string(KeyTypeName(type)));
    const std::string label = label_ + "-" + std::string(KeyTypeName(type));
    auto signer = store_->CreateKey(label, type);
    ASSERT_TRUE(signer.ok()) << signer.status().ToString();
    EXPECT_EQ((*signer)->key_type(), type);
    EXPECT_EQ(*KeyTypeOf((*signer)->public_key()), type);

    const SignatureScheme scheme = DefaultSchemeFor(type);
    const std::string text = "sign me: " + label;
    const auto message = AsBytes(text);
    auto der = (*signer)->SignMessage(scheme, message);
    ASSERT_TRUE(der.ok()) << der.status().ToString();
    EXPECT_TRUE(Verify((*signer)->public_key(), scheme, message, *der));
    EXPECT_FALSE(Verify((*signer)->public_key(), scheme, AsBytes("another message"), *der));

    auto jws = (*signer)->SignMessageJws(scheme, message);
    ASSERT_TRUE(jws.ok()) << jws.status().ToString();
    if (type == KeyType::kRsa2048) {
      EXPECT_EQ(jws->size(), 256u);
      EXPECT_TRUE(Verify((*signer)->public_key(), scheme, message, *jws));
    } else {
      EXPECT_EQ(jws->size(), 2 * EcdsaFieldSize(type));
      auto back = EcdsaRawToDer(*jws);
      ASSERT_TRUE(back.ok());
      EXPECT_TRUE(Verify((*signer)->public_key(), scheme, message, *back));
    }
    ASSERT_TRUE(store_->DeleteKey(label).ok());
  }
}

TEST_P(KeyStoreTest, FindsWhatItCreatedAndRefusesDuplicates) {
  auto created = store_->CreateKey(label_, KeyType::kEcP256);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto found = store_->FindKey(label_);
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(EVP_PKEY_eq((*created)->public_key(), (*found)->public_key()), 1);

  auto again = store_->CreateKey(label_, KeyType::kEcP256);
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists);
  auto wrong_type = store_->FindOrCreateKey(label_, KeyType::kEcP384);
  EXPECT_EQ(wrong_type.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(wrong_type.status().message().find("ec-p256"), std::string::npos);
  auto same = store_->FindOrCreateKey(label_, KeyType::kEcP256);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(EVP_PKEY_eq((*created)->public_key(), (*same)->public_key()), 1);

  ASSERT_TRUE(store_->DeleteKey(label_).ok());
  EXPECT_EQ(store_->FindKey(label_).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->DeleteKey(label_).code(), Code::kNotFound);
}

TEST_P(KeyStoreTest, UnknownLabelAndBadRequestsNameTheirCause) {
  auto missing = store_->FindKey("no-such-key");
  ASSERT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("no-such-key"), std::string::npos);
  EXPECT_EQ(store_->FindKey("../etc/passwd").status().code(), Code::kInvalidArgument);

  auto signer = store_->CreateKey(label_, KeyType::kEcP256);
  ASSERT_TRUE(signer.ok());
  auto wrong_scheme = (*signer)->SignMessage(SignatureScheme::kRS256, AsBytes("x"));
  ASSERT_EQ(wrong_scheme.status().code(), Code::kInvalidArgument);
  EXPECT_NE(wrong_scheme.status().message().find("RS256"), std::string::npos);
  const uint8_t short_digest[5] = {};
  EXPECT_EQ((*signer)->SignDigest(SignatureScheme::kES256, short_digest).status().code(),
            Code::kInvalidArgument);
  ASSERT_TRUE(store_->DeleteKey(label_).ok());
}

// Memory keys end with their store by design, so only the other backends run this.
class PersistentKeyStoreTest : public KeyStoreTest {};

TEST_P(PersistentKeyStoreTest, SurvivesReopen) {
  EvpPkeyPtr public_key;
  {
    auto created = store_->CreateKey(label_, KeyType::kEcP256);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    public_key.reset(EVP_PKEY_dup((*created)->public_key()));
  }
  store_.reset();

  store_ = Open();
  ASSERT_NE(store_, nullptr);
  auto found = store_->FindKey(label_);
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(EVP_PKEY_eq(public_key.get(), (*found)->public_key()), 1);
  auto signature = (*found)->SignMessage(SignatureScheme::kES256, AsBytes("after reopen"));
  ASSERT_TRUE(signature.ok()) << signature.status().ToString();
  EXPECT_TRUE(Verify(public_key.get(), SignatureScheme::kES256, AsBytes("after reopen"), *signature));
  ASSERT_TRUE(store_->DeleteKey(label_).ok());
}

TEST_P(KeyStoreTest, ConcurrentSignersGiveOnlyValidSignatures) {
  auto signer = store_->CreateKey(label_, KeyType::kEcP256);
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  constexpr int kThreads = 4;
  constexpr int kSignsPerThread = 25;
  std::atomic<int> valid{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kSignsPerThread; ++i) {
        const std::string message = "thread " + std::to_string(t) + " item " + std::to_string(i);
        auto signature = (*signer)->SignMessage(SignatureScheme::kES256, AsBytes(message));
        if (signature.ok() && Verify((*signer)->public_key(), SignatureScheme::kES256,
                                     AsBytes(message), *signature)) {
          ++valid;
        } else {
          ++failed;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(valid.load(), kThreads * kSignsPerThread);
  ASSERT_TRUE(store_->DeleteKey(label_).ok());
}

const BackendCase kSoftMemory{
    "soft_memory", [](const std::filesystem::path&) { return std::string("soft:"); }, false};

INSTANTIATE_TEST_SUITE_P(
    MemoryBackend, KeyStoreTest, ::testing::Values(kSoftMemory),
    [](const ::testing::TestParamInfo<BackendCase>& info) { return info.param.name; });

const auto kPersistentBackends = ::testing::Values(
        BackendCase{"soft_files",
                    [](const std::filesystem::path& dir) { return "soft:" + (dir / "keys").string(); },
                    true},
        BackendCase{"pkcs11", [](const std::filesystem::path&) { return Backends()->ca_token.uri(); },
                    true},
        BackendCase{"tpm",
                    [](const std::filesystem::path& dir) {
                      return "tpm:" + Backends()->tpm->tcti() + "?data-dir=" + (dir / "tpm").string();
                    },
                    true});

INSTANTIATE_TEST_SUITE_P(
    PersistentBackends, KeyStoreTest, kPersistentBackends,
    [](const ::testing::TestParamInfo<BackendCase>& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(
    PersistentBackends, PersistentKeyStoreTest, kPersistentBackends,
    [](const ::testing::TestParamInfo<BackendCase>& info) { return info.param.name; });

}  // namespace
}  // namespace sigil::hw
