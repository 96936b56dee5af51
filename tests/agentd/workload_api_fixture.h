// A Workload API server on a loop thread of its own, on a socket in a temporary folder, fed
// from an SvidCache whose SVIDs a test CA issues and whose JWT-SVIDs a test JWT key signs.
// Shared by the tests that drive the API with the Python gRPC client and with `agentd`.
#pragma once

#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agentd/sync/svid_cache.h"
#include "agentd/workload/workload_api.h"
#include "core/jwt_svid.h"
#include "core/trust_bundle.h"
#include "hw/soft_key_store.h"
#include "tests/support/process.h"
#include "tests/support/test_pki.h"
#include "transport/event_loop.h"

namespace sigil::agentd::testing {

inline constexpr char kJwtKeyId[] = "jwt-key-1";

inline Bytes Pkcs8Der(EVP_PKEY* key) {
  std::unique_ptr<PKCS8_PRIV_KEY_INFO, decltype(&PKCS8_PRIV_KEY_INFO_free)> info(
      EVP_PKEY2PKCS8(key), PKCS8_PRIV_KEY_INFO_free);
  unsigned char* der = nullptr;
  const int length = info ? i2d_PKCS8_PRIV_KEY_INFO(info.get(), &der) : -1;
  if (length <= 0) return {};
  Bytes out(der, der + length);
  OPENSSL_free(der);
  return out;
}

inline std::string DerToPem(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  const auto* end = p + der.size();
  std::string pem;
  while (p < end) {
    X509Ptr cert(d2i_X509(nullptr, &p, end - p));
    if (!cert) return pem;
    X509* raw = cert.get();
    pem += *CertsToPem(std::span<X509* const>(&raw, 1));
  }
  return pem;
}

inline RegistrationEntry WorkloadEntry(const std::string& id, const std::string& path, uid_t uid) {
  RegistrationEntry entry;
  entry.id = id;
  entry.spiffe_id = "spiffe://example.org" + path;
  entry.parent_id = "spiffe://example.org/spire/agent/join_token/test";
  entry.selectors = {{"unix", "uid:" + std::to_string(uid)}};
  entry.revision = 1;
  return entry;
}

class WorkloadApiFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    // Other uids (the tests' setpriv clients) must reach the socket and the stubs.
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
    auto jwt_key = hw::GenerateSoftKey(KeyType::kEcP256);
    ASSERT_TRUE(jwt_key.ok());
    jwt_public_ = UpRef(jwt_key->get());
    auto signer = hw::MakeSoftSigner(std::move(*jwt_key));
    ASSERT_TRUE(signer.ok());
    jwt_signer_ = *signer;

    cache_.SetBundles(OwnBundle(), {{"partner.test", PartnerBundle()}});
    socket_path_ = (dir_ / "public" / "api.sock").string();
    loop_.Start();
  }

  void TearDown() override {
    // Minter threads hand their answers to the server's loop: they finish while it is there.
    std::vector<std::thread> minters;
    {
      std::lock_guard lock(threads_mutex_);
      minters.swap(minter_threads_);
    }
    for (auto& t : minters) t.join();
    loop_.loop().Invoke([&] { server_.reset(); });
    loop_.Stop();
  }

  TrustBundle OwnBundle() const {
    TrustBundle bundle(*TrustDomain::Parse("example.org"));
    bundle.x509.Add(ca_.cert());
    bundle.jwt.authorities.emplace(kJwtKeyId, JwtAuthority(UpRef(jwt_public_.get())));
    return bundle;
  }
  TrustBundle PartnerBundle() const {
    TrustBundle bundle(*TrustDomain::Parse("partner.test"));
    bundle.x509.Add(partner_ca_.cert());
    return bundle;
  }

  void StartServer(WorkloadApiOptions options = {}) {
    options.socket_path = socket_path_;
    if (!options.mint_jwt) {
      // Answers from another thread, as the agent's connection to serverd does.
      options.mint_jwt = [this](const RegistrationEntry& entry, std::vector<std::string> audience,
                                std::function<void(Result<WorkloadJwtSvid>)> done) {
        ++mints_;
        std::lock_guard lock(threads_mutex_);
        minter_threads_.emplace_back(
            [this, entry, audience, done] { done(MintJwt(entry, audience)); });
      };
    }
    Status started = loop_.loop().Invoke([&] {
      server_ = std::make_unique<WorkloadApiServer>(&loop_.loop(), &cache_, std::move(options));
      return server_->Start();
    });
    ASSERT_TRUE(started.ok()) << started.ToString();
  }

  Result<WorkloadJwtSvid> MintJwt(const RegistrationEntry& entry,
                                  const std::vector<std::string>& audience) {
    JwtSvidParams params(*SpiffeId::Parse(entry.spiffe_id));
    params.audience = audience;
    SIGIL_ASSIGN_OR_RETURN(JwtSvid minted, MintJwtSvid(*jwt_signer_, kJwtKeyId, params));
    WorkloadJwtSvid svid;
    svid.spiffe_id = entry.spiffe_id;
    svid.token = minted.token;
    svid.hint = entry.hint;
    svid.issued_at = minted.issued_at;
    svid.expires_at = minted.expires_at;
    return svid;
  }

  // An X509-SVID for `entry` from the test CA, stored in the cache; returns its leaf DER.
  std::string IssueSvid(const RegistrationEntry& entry) {
    sigil::testing::TestCert cert = ca_.IssueSvid(entry.spiffe_id);
    auto svid = std::make_shared<WorkloadX509Svid>();
    svid->issued_for = std::make_shared<const RegistrationEntry>(entry);
    svid->chain_der = *CertToDer(cert.cert.get());
    svid->key_pkcs8_der = Pkcs8Der(cert.key.get());
    svid->not_before = CertNotBefore(cert.cert.get());
    svid->not_after = CertNotAfter(cert.cert.get());
    std::string leaf(svid->chain_der.begin(), svid->chain_der.end());
    cache_.StoreSvid(std::move(svid));
    return leaf;
  }

  size_t OpenStreams() {
    return loop_.loop().Invoke([&] { return server_ ? server_->open_streams() : size_t{0}; });
  }

  std::string CaDer() const {
    auto der = CertToDer(ca_.cert());
    return std::string(der->begin(), der->end());
  }
  std::string PartnerCaDer() const {
    auto der = CertToDer(partner_ca_.cert());
    return std::string(der->begin(), der->end());
  }

  sigil::testing::TempDir dir_{"sigil-workload"};
  sigil::testing::TestCa ca_{"example.org"};
  sigil::testing::TestCa partner_ca_{"partner.test"};
  EvpPkeyPtr jwt_public_;
  std::shared_ptr<Signer> jwt_signer_;
  SvidCache cache_;
  std::string socket_path_;
  transport::LoopThread loop_;
  std::unique_ptr<WorkloadApiServer> server_;
  std::atomic<int> mints_{0};
  std::mutex threads_mutex_;
  std::vector<std::thread> minter_threads_;
};

}  // namespace sigil::agentd::testing
