// The CA's life against a real SoftHSM2 token and a real SQLite journal: made once, found again
// after a restart, rotated at SPIRE's thresholds with both CAs published while they overlap, and
// SVIDs minted on either side of a rotation verifying against the published bundle.
#include "serverd/ca/ca_manager.h"

#include <gtest/gtest.h>

#include "core/jwt_svid.h"
#include "core/x509_svid.h"
#include "serverd/datastore/sqlite_datastore.h"
#include "tests/support/hw_backends.h"

namespace sigil::serverd {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

class CaManagerTest : public ::testing::TestWithParam<CaMode> {
 protected:
  void SetUp() override {
    auto store = OpenSqliteDatastore(dir_ / "db.sqlite3");
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    auto keys = hw::OpenKeyStore(hw::Backends()->ca_token.uri());
    ASSERT_TRUE(keys.ok()) << keys.status().ToString();
    keys_ = std::move(*keys);
    options_.trust_domain = *TrustDomain::Parse("example.org");
    options_.ca_ttl = hours(6);
    options_.mode = GetParam();
    options_.delegated_ca_ttl = seconds(1200);
    start_ = std::chrono::floor<seconds>(std::chrono::system_clock::now()) + hours(1000 * counter_++);
  }
  void TearDown() override {
    // The token is shared by the binary: leave it as found.
    auto slots = store_->ListCaSlots();
    ASSERT_TRUE(slots.ok());
    for (const auto& slot : *slots) {
      (void)keys_->DeleteKey(slot.key_label);
      (void)keys_->DeleteKey("jwt" + slot.key_label.substr(2));
    }
  }

  // An SVID for a fresh key, minted by the current issuer at `now`.
  X509Svid Mint(CaManager& ca, TimePoint now) {
    EXPECT_TRUE(ca.Tick(now).ok());  // as the server's timer does before any request
    X509SvidParams params(*SpiffeId::Parse("spiffe://example.org/web"));
    params.now = now;
    params.ttl = seconds(600);
    EvpPkeyPtr key(EVP_EC_gen("P-256"));
    auto svid = MintX509Svid(*ca.current()->issuer, key.get(), params);
    EXPECT_TRUE(svid.ok()) << svid.status().ToString();
    return std::move(*svid);
  }

  static inline int counter_ = 0;
  sigil::testing::TempDir dir_{"sigil-ca"};
  std::unique_ptr<Datastore> store_;
  std::unique_ptr<hw::KeyStore> keys_;
  CaManagerOptions options_;
  TimePoint start_;
};

TEST_P(CaManagerTest, FirstStartMakesACaAndARestartFindsIt) {
  Bytes first_root;
  {
    CaManager ca(options_, *keys_, *store_);
    ASSERT_TRUE(ca.Start(start_).ok());
    const auto current = ca.current();
    ASSERT_EQ(current->bundle.x509.authorities.size(), 1u);
    first_root = *CertToDer(current->bundle.x509.authorities[0].get());
    EXPECT_EQ(current->bundle.jwt.authorities.size(), 1u);
    EXPECT_EQ(*CertToDer(current->issuer->root()), first_root);  // the issuer chains to the published root
    if (GetParam() == CaMode::kDelegated) {
      EXPECT_EQ(current->issuer->intermediates().size(), 1u);  // the in-memory intermediate's chain
    }
  }
  CaManager again(options_, *keys_, *store_);
  ASSERT_TRUE(again.Start(start_ + hours(1)).ok());
  ASSERT_EQ(again.current()->bundle.x509.authorities.size(), 1u);
  EXPECT_EQ(*CertToDer(again.current()->bundle.x509.authorities[0].get()), first_root);
  EXPECT_EQ(store_->ListCaSlots()->size(), 1u);
  auto published = store_->FetchBundle("example.org");
  ASSERT_TRUE(published.ok());
  auto parsed = TrustBundleFromJwks(options_.trust_domain, published->data);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->x509.authorities.size(), 1u);
}

TEST_P(CaManagerTest, RotationKeepsEverySvidVerifiable) {
  CaManager ca(options_, *keys_, *store_);
  ASSERT_TRUE(ca.Start(start_).ok());
  std::vector<std::pair<TimePoint, X509Svid>> minted;
  minted.emplace_back(start_ + hours(1), Mint(ca, start_ + hours(1)));

  // 1/2 of six hours: the next CA is prepared and published, not yet used.
  ASSERT_TRUE(*ca.Tick(start_ + hours(3)));
  EXPECT_EQ(ca.current()->bundle.x509.authorities.size(), 2u);
  EXPECT_EQ(ca.current()->bundle.jwt.authorities.size(), 2u);
  minted.emplace_back(start_ + hours(3), Mint(ca, start_ + hours(3)));
  const X509* root_before = ca.current()->issuer->root();

  // 5/6: the prepared CA becomes the issuer.
  ASSERT_TRUE(*ca.Tick(start_ + hours(5)));
  EXPECT_NE(ca.current()->issuer->root(), root_before);
  EXPECT_EQ(ca.current()->bundle.x509.authorities.size(), 2u);
  minted.emplace_back(start_ + hours(5), Mint(ca, start_ + hours(5)));

  for (const auto& [when, svid] : minted) {
    auto checked = VerifyX509Svid(svid.raw_chain(), ca.current()->bundle.x509, when + seconds(60));
    EXPECT_TRUE(checked.ok()) << checked.status().ToString();
  }
  // A restart between rotations loads both slots again, the new one active.
  CaManager restarted(options_, *keys_, *store_);
  ASSERT_TRUE(restarted.Start(start_ + hours(5) + seconds(1)).ok());
  EXPECT_EQ(restarted.current()->bundle.x509.authorities.size(), 2u);
  EXPECT_EQ(*CertToDer(restarted.current()->issuer->root()), *CertToDer(const_cast<X509*>(ca.current()->issuer->root())));

  // Once the first CA expires, it leaves the bundle (and the second, at half its life, has
  // prepared a third).
  const Bytes first_root = *CertToDer(const_cast<X509*>(root_before));
  ASSERT_TRUE(*ca.Tick(start_ + hours(6) + seconds(20)));
  for (const auto& authority : ca.current()->bundle.x509.authorities) {
    EXPECT_NE(*CertToDer(authority.get()), first_root);
  }
  EXPECT_EQ(ca.current()->bundle.x509.authorities.size(), 2u);
  EXPECT_FALSE(*ca.Tick(start_ + hours(6) + seconds(30)));
}

TEST_P(CaManagerTest, JwtSvidsVerifyAcrossRotation) {
  CaManager ca(options_, *keys_, *store_);
  ASSERT_TRUE(ca.Start(start_).ok());
  auto mint = [&](TimePoint now) {
    JwtSvidParams params(*SpiffeId::Parse("spiffe://example.org/web"));
    params.audience = {"db"};
    params.now = now;
    auto current = ca.current();
    auto token = MintJwtSvid(*current->jwt_key, current->jwt_key_id, params);
    EXPECT_TRUE(token.ok()) << token.status().ToString();
    return token->token;
  };
  ASSERT_TRUE(*ca.Tick(start_ + hours(3)));
  const std::string before = mint(start_ + hours(5) - seconds(60));
  const std::string before_kid = ca.current()->jwt_key_id;
  ASSERT_TRUE(*ca.Tick(start_ + hours(5)));
  EXPECT_NE(ca.current()->jwt_key_id, before_kid);
  const std::string after = mint(start_ + hours(5) + seconds(1));
  // Both verify against the bundle published after the rotation.
  for (const std::string& token : {before, after}) {
    auto valid = ValidateJwtSvid(token, ca.current()->bundle.jwt, "db", start_ + hours(5) + seconds(2));
    EXPECT_TRUE(valid.ok()) << valid.status().ToString();
  }
}

// SPIRE's local authority commands, by hand: prepare, activate, taint, revoke, each refused
// where SPIRE refuses it, with the bundle and the journal following every step.
TEST_P(CaManagerTest, AnOperatorRotatesTaintsAndRevokesAnAuthority) {
  using Kind = CaManager::AuthorityKind;
  CaManager ca(options_, *keys_, *store_);
  ASSERT_TRUE(ca.Start(start_).ok());
  const auto first = ca.Authorities(Kind::kX509);
  ASSERT_TRUE(first.active);
  EXPECT_FALSE(first.prepared || first.old);
  const std::string first_id = first.active->authority_id;
  EXPECT_EQ(first_id, X509AuthorityId(ca.current()->bundle.x509.authorities[0].get()));
  const std::string first_kid = ca.current()->jwt_key_id;
  EXPECT_EQ(ca.Authorities(Kind::kJwt).active->authority_id, first_kid);

  EXPECT_EQ(ca.Activate(Kind::kX509, first_id, start_).status().code(), Code::kFailedPrecondition) << "none prepared";
  EXPECT_EQ(ca.Taint(Kind::kX509, first_id).status().code(), Code::kInvalidArgument) << "the active one";
  const auto sequence = ca.current()->bundle.sequence;

  // Preparing twice keeps the second: the first signed nothing and leaves the bundle.
  auto dropped = ca.Prepare(Kind::kX509, start_ + seconds(10));
  ASSERT_TRUE(dropped.ok()) << dropped.status().ToString();
  auto prepared = ca.Prepare(Kind::kX509, start_ + seconds(20));
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_NE(prepared->authority_id, dropped->authority_id);
  EXPECT_EQ(ca.current()->bundle.x509.authorities.size(), 2u);
  EXPECT_GT(ca.current()->bundle.sequence, sequence);
  EXPECT_EQ(ca.Authorities(Kind::kX509).prepared->authority_id, prepared->authority_id);
  EXPECT_EQ(ca.Taint(Kind::kX509, prepared->authority_id).status().code(), Code::kInvalidArgument) << "prepared";
  EXPECT_EQ(ca.Activate(Kind::kX509, dropped->authority_id, start_).status().code(), Code::kInvalidArgument);
  const Bytes first_root = *CertToDer(const_cast<X509*>(ca.current()->issuer->root()));

  auto activated = ca.Activate(Kind::kX509, prepared->authority_id, start_ + seconds(30));
  ASSERT_TRUE(activated.ok()) << activated.status().ToString();
  EXPECT_NE(*CertToDer(const_cast<X509*>(ca.current()->issuer->root())), first_root);
  const auto after = ca.Authorities(Kind::kX509);
  EXPECT_EQ(after.active->authority_id, prepared->authority_id);
  ASSERT_TRUE(after.old);
  EXPECT_EQ(after.old->authority_id, first_id);
  EXPECT_FALSE(after.prepared);
  EXPECT_NE(ca.current()->jwt_key_id, first_kid) << "a slot's JWT key is activated with its CA";

  EXPECT_EQ(ca.Revoke(Kind::kX509, first_id).status().code(), Code::kFailedPrecondition) << "not tainted yet";
  EXPECT_EQ(ca.Taint(Kind::kX509, "00").status().code(), Code::kNotFound);
  auto tainted = ca.Taint(Kind::kX509, first_id);
  ASSERT_TRUE(tainted.ok()) << tainted.status().ToString();
  EXPECT_TRUE(tainted->tainted);
  EXPECT_EQ(ca.Taint(Kind::kX509, first_id).status().code(), Code::kFailedPrecondition) << "already tainted";
  EXPECT_EQ(ca.current()->bundle.tainted_x509_authorities, (std::set<std::string, std::less<>>{first_id}));
  EXPECT_TRUE(ca.current()->bundle.tainted_jwt_authorities.empty()) << "each kind is tainted on its own";
  EXPECT_EQ(ca.current()->bundle.x509.authorities.size(), 2u) << "a tainted authority is still trusted";

  auto revoked = ca.Revoke(Kind::kX509, first_id);
  ASSERT_TRUE(revoked.ok()) << revoked.status().ToString();
  ASSERT_EQ(ca.current()->bundle.x509.authorities.size(), 1u);
  EXPECT_EQ(X509AuthorityId(ca.current()->bundle.x509.authorities[0].get()), prepared->authority_id);
  EXPECT_TRUE(ca.current()->bundle.tainted_x509_authorities.empty());
  EXPECT_EQ(ca.current()->bundle.jwt.authorities.size(), 2u) << "the old JWT key stays until it is revoked";
  EXPECT_FALSE(ca.Authorities(Kind::kX509).old);
  ASSERT_TRUE(ca.Taint(Kind::kJwt, first_kid).ok());
  EXPECT_TRUE(ca.current()->bundle.tainted_jwt_authorities.contains(first_kid));

  // A restart finds every mark where it was left.
  CaManager restarted(options_, *keys_, *store_);
  ASSERT_TRUE(restarted.Start(start_ + seconds(40)).ok());
  EXPECT_EQ(restarted.current()->bundle.x509.authorities.size(), 1u);
  EXPECT_TRUE(restarted.current()->bundle.tainted_jwt_authorities.contains(first_kid));
  ASSERT_TRUE(restarted.Revoke(Kind::kJwt, first_kid).ok());
  EXPECT_EQ(restarted.current()->bundle.jwt.authorities.size(), 1u);
  EXPECT_FALSE(restarted.Authorities(Kind::kJwt).old);
  auto persisted = TrustBundleFromJwks(options_.trust_domain, store_->FetchBundle("example.org")->data);
  ASSERT_TRUE(persisted.ok());
  EXPECT_EQ(persisted->x509.authorities.size(), 1u);
  EXPECT_EQ(persisted->jwt.authorities.size(), 1u);
}

// Two replicas on one journal, each with its own token: each signs with its own CA and publishes
// both, so an SVID of either verifies with the bundle of the other; one's rotation reaches the
// other's bundle at its next look; a restart finds only its own slots.
TEST_P(CaManagerTest, ReplicasSignWithTheirOwnCaAndPublishEachOthers) {
  auto keys_b = hw::OpenKeyStore(hw::Backends()->replica_ca_token.uri());
  ASSERT_TRUE(keys_b.ok()) << keys_b.status().ToString();
  CaManagerOptions a_options = options_;
  a_options.replica = "a";
  CaManagerOptions b_options = options_;
  b_options.replica = "b";
  CaManager a(a_options, *keys_, *store_);
  ASSERT_TRUE(a.Start(start_).ok());
  CaManager b(b_options, **keys_b, *store_);
  auto b_started = b.Start(start_);
  ASSERT_TRUE(b_started.ok()) << b_started.ToString();
  // b read a's CA as it started; a learns of b's when the journal's change is announced.
  EXPECT_EQ(b.current()->bundle.x509.authorities.size(), 2u);
  EXPECT_EQ(a.current()->bundle.x509.authorities.size(), 1u);
  a.JournalChanged();
  ASSERT_TRUE(*a.Tick(start_ + seconds(1)));
  EXPECT_EQ(a.current()->bundle.x509.authorities.size(), 2u);
  EXPECT_EQ(a.current()->bundle.jwt.authorities.size(), 2u);
  EXPECT_TRUE(a.current()->bundle.jwt.authorities.contains(b.current()->jwt_key_id));
  EXPECT_TRUE(b.current()->bundle.jwt.authorities.contains(a.current()->jwt_key_id));
  EXPECT_NE(*CertToDer(const_cast<X509*>(a.current()->issuer->root())),
            *CertToDer(const_cast<X509*>(b.current()->issuer->root())));
  const X509Svid from_a = Mint(a, start_ + seconds(2));
  const X509Svid from_b = Mint(b, start_ + seconds(2));
  EXPECT_TRUE(VerifyX509Svid(from_a.raw_chain(), b.current()->bundle.x509, start_ + seconds(3)).ok());
  EXPECT_TRUE(VerifyX509Svid(from_b.raw_chain(), a.current()->bundle.x509, start_ + seconds(3)).ok());

  // a prepares its next CA at half-life; b publishes it at its next look, before a signs with it.
  const auto half = start_ + hours(3) + seconds(1);
  ASSERT_TRUE(*a.Tick(half));
  EXPECT_EQ(a.current()->bundle.x509.authorities.size(), 3u);
  b.JournalChanged();
  ASSERT_TRUE(*b.Tick(half));  // a's prepared CA, and b's own
  EXPECT_EQ(b.current()->bundle.x509.authorities.size(), 4u);
  a.JournalChanged();
  ASSERT_TRUE(*a.Tick(half));
  EXPECT_EQ(a.current()->bundle.x509.authorities.size(), 4u);

  // A restart of a loads its two slots from its own token and publishes b's two.
  CaManager a_again(a_options, *keys_, *store_);
  ASSERT_TRUE(a_again.Start(half).ok());
  EXPECT_EQ(a_again.current()->bundle.x509.authorities.size(), 4u);
  EXPECT_EQ(*CertToDer(const_cast<X509*>(a_again.current()->issuer->root())),
            *CertToDer(const_cast<X509*>(a.current()->issuer->root())));
  // A serverd given another's replica name, whose token lacks that replica's keys, refuses to start
  // and says which setting to look at.
  CaManager impostor(a_options, **keys_b, *store_);
  Status refused = impostor.Start(half);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.ToString().find("datastore.replica_name"), std::string::npos) << refused.ToString();
  auto slots = store_->ListCaSlots();
  ASSERT_TRUE(slots.ok());
  for (const auto& slot : *slots) {
    if (slot.replica == "b") {
      (void)(*keys_b)->DeleteKey(slot.key_label);
      (void)(*keys_b)->DeleteKey("jwt" + slot.key_label.substr(2));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, CaManagerTest, ::testing::Values(CaMode::kDirect, CaMode::kDelegated),
                         [](const auto& info) { return info.param == CaMode::kDirect ? "direct" : "delegated"; });

}  // namespace
}  // namespace sigil::serverd
