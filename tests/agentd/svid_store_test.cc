// The workload SVIDs and federated bundles agentd keeps in data_dir, on a real folder: what one
// agent saves the next reads back; what cannot be trusted any more (expired, a key not the
// certificate's, an entry serverd removed, a bundle that does not parse) is never read back.
#include "agentd/sync/svid_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "core/log.h"
#include "core/openssl_util.h"
#include "core/trust_bundle.h"
#include "core/x509_ca.h"
#include "hw/soft_key_store.h"
#include "tests/support/process.h"
#include "tests/support/test_pki.h"

namespace sigil::agentd {
namespace {

namespace fs = std::filesystem;
using sigil::testing::SvidOptions;
using sigil::testing::TempDir;
using sigil::testing::TestCa;
using sigil::testing::TestCert;

RegistrationEntry WorkloadEntry(const std::string& id, const std::string& path, const std::string& uid) {
  RegistrationEntry entry;
  entry.id = id;
  entry.spiffe_id = "spiffe://example.org" + path;
  entry.parent_id = "spiffe://example.org/spire/agent/join_token/test";
  entry.selectors = {{"unix", "uid:" + uid}};
  entry.revision = 1;
  return entry;
}

class SvidStoreTest : public ::testing::Test {
 protected:
  SvidStoreTest() : trust_domain_(*TrustDomain::Parse("example.org")) {}

  // An SVID for `entry` from the test CA, valid from a minute ago until `ttl` from now.
  std::shared_ptr<const WorkloadX509Svid> Issue(const std::shared_ptr<const RegistrationEntry>& entry,
                                                std::chrono::seconds ttl = std::chrono::hours(1)) {
    SvidOptions options;
    options.uris = {entry->spiffe_id};
    options.not_after = ttl;
    TestCert cert = ca_.Issue(options);
    auto svid = std::make_shared<WorkloadX509Svid>();
    svid->issued_for = entry;
    svid->chain_der = *CertToDer(cert.cert.get());
    svid->key_pkcs8_der = *PrivateKeyToPkcs8Der(cert.key.get());
    svid->not_before = CertNotBefore(cert.cert.get());
    svid->not_after = CertNotAfter(cert.cert.get());
    return svid;
  }

  // The cache as serverd's first sync and the rotator leave it: `entries`, each with an SVID.
  std::shared_ptr<const SvidCache::Snapshot> Synced(const std::vector<RegistrationEntry>& entries) {
    cache_.ApplyEntries(entries, {}, 1, true);
    TrustBundle bundle(trust_domain_);
    bundle.x509.Add(ca_.cert());
    cache_.SetBundle(std::move(bundle));
    std::vector<std::shared_ptr<const WorkloadX509Svid>> svids;
    for (const auto& [id, cached] : *cache_.snapshot()->entries) svids.push_back(Issue(cached.entry));
    cache_.StoreSvids(std::move(svids));
    return cache_.snapshot();
  }

  // The partner trust domain's bundle as the entry sync brings it: the X.509 authorities of
  // `cas` and one JWT key.
  TrustBundle PartnerBundle(const std::vector<const TestCa*>& cas, uint64_t sequence) {
    TrustBundle bundle(*TrustDomain::Parse("partner.test"));
    for (const TestCa* ca : cas) bundle.x509.Add(ca->cert());
    bundle.jwt.authorities.emplace("partner-key", JwtAuthority(UpRef(partner_jwt_key_.get())));
    bundle.sequence = sequence;
    return bundle;
  }
  std::map<std::string, TrustBundle> Federated(TrustBundle bundle) {
    std::map<std::string, TrustBundle> federated;
    federated.emplace(bundle.trust_domain().name(), std::move(bundle));
    return federated;
  }
  std::string Jwks(const TrustBundle& bundle) {
    auto jwks = TrustBundleToJwks(bundle);
    EXPECT_TRUE(jwks.ok()) << jwks.status().ToString();
    return jwks.ok() ? *jwks : "";
  }
  ino_t InodeOf(const fs::path& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
  }

  std::vector<fs::path> FilesIn(const fs::path& dir) {
    std::vector<fs::path> files;
    for (const auto& file : fs::directory_iterator(dir)) files.push_back(file.path());
    return files;
  }

  TempDir dir_{"sigil-svid-store"};
  TrustDomain trust_domain_;
  TestCa ca_{"example.org"};
  TestCa partner_{"partner.test"};
  EvpPkeyPtr partner_jwt_key_ = std::move(*hw::GenerateSoftKey(KeyType::kEcP256));
  SvidCache cache_;
};

TEST_F(SvidStoreTest, ANewAgentReadsBackWhatTheLastOneKept) {
  auto snapshot = Synced({WorkloadEntry("e1", "/web", "1001"), WorkloadEntry("e2", "/db", "1002")});
  SvidStore saving(dir_.path(), trust_domain_);
  ASSERT_TRUE(saving.Save(*snapshot).ok());
  for (const auto& file : FilesIn(dir_.path())) {
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << file;
  }

  SvidStore reading(dir_.path(), trust_domain_);
  SvidStore::Loaded loaded = reading.Load(Clock::now());
  ASSERT_EQ(loaded.entries.size(), 2u);
  ASSERT_NE(loaded.bundle, nullptr);
  EXPECT_EQ(loaded.bundle->x509.authorities.size(), 1u);
  for (const auto& restored : loaded.entries) {
    const auto& held = snapshot->entries->at(restored.entry->id);
    EXPECT_EQ(*restored.entry, *held.entry);
    EXPECT_EQ(restored.svid->chain_der, held.svid->chain_der);
    EXPECT_EQ(restored.svid->key_pkcs8_der, held.svid->key_pkcs8_der);
    EXPECT_EQ(restored.svid->not_after, held.svid->not_after);
  }

  SvidCache restarted;
  restarted.Restore(std::move(loaded.entries));
  auto served = restarted.SvidsFor(SelectorSet({Selector{"unix", "uid:1002"}}));
  ASSERT_EQ(served.size(), 1u);
  EXPECT_EQ(served[0]->spiffe_id(), "spiffe://example.org/db");
  EXPECT_TRUE(restarted.EntriesNeedingSvid(Clock::now()).empty()) << "a restored SVID is signed again at once";
}

TEST_F(SvidStoreTest, AnEntryServerdRemovedLosesItsFileAtTheNextSave) {
  SvidStore store(dir_.path(), trust_domain_);
  ASSERT_TRUE(store.Save(*Synced({WorkloadEntry("e1", "/web", "1001"), WorkloadEntry("e2", "/db", "1002")})).ok());
  cache_.ApplyEntries({}, {"e2"}, 2, false);
  ASSERT_TRUE(store.Save(*cache_.snapshot()).ok());
  SvidStore::Loaded loaded = SvidStore(dir_.path(), trust_domain_).Load(Clock::now());
  ASSERT_EQ(loaded.entries.size(), 1u);
  EXPECT_EQ(loaded.entries[0].entry->id, "e1");
}

TEST_F(SvidStoreTest, ExpiredMismatchedAndHalfWrittenFilesAreRemovedNotServed) {
  SvidStore store(dir_.path(), trust_domain_);
  auto snapshot = Synced({WorkloadEntry("e1", "/web", "1001"), WorkloadEntry("e2", "/db", "1002"),
                          WorkloadEntry("e3", "/cache", "1003")});
  ASSERT_TRUE(store.Save(*snapshot).ok());
  const auto files_before = FilesIn(dir_.path()).size();
  // e2's key replaced by another key, as a torn or tampered write would leave it.
  const auto e2 = snapshot->entries->at("e2");
  auto other_key = hw::GenerateSoftKey(KeyType::kEcP256);
  ASSERT_TRUE(other_key.ok());
  auto mismatched = std::make_shared<WorkloadX509Svid>(*e2.svid);
  mismatched->key_pkcs8_der = *PrivateKeyToPkcs8Der(other_key->get());
  // e3's SVID expires in two seconds; the next agent reads the folder five seconds from now.
  auto short_lived = Issue(snapshot->entries->at("e3").entry, std::chrono::seconds(2));
  cache_.StoreSvids({mismatched, short_lived});
  ASSERT_TRUE(store.Save(*cache_.snapshot()).ok());
  sigil::testing::WriteFile(dir_.path() / "0123.pem.tmp", "half a write");

  SvidStore::Loaded loaded = SvidStore(dir_.path(), trust_domain_).Load(Clock::now() + std::chrono::seconds(5));
  ASSERT_EQ(loaded.entries.size(), 1u);
  EXPECT_EQ(loaded.entries[0].entry->id, "e1");
  EXPECT_EQ(FilesIn(dir_.path()).size(), files_before - 2) << "the unusable files stay behind";
}

TEST_F(SvidStoreTest, AnEntryWhoseShapeChangedIsSignedAgainAfterARestart) {
  SvidStore store(dir_.path(), trust_domain_);
  Synced({WorkloadEntry("e1", "/web", "1001")});
  auto changed = WorkloadEntry("e1", "/web", "1001");
  changed.dns_names = {"web.example.org"};
  changed.revision = 2;
  cache_.ApplyEntries({changed}, {}, 2, false);  // the old SVID serves until the new one comes
  ASSERT_EQ(cache_.EntriesNeedingSvid(Clock::now()).size(), 1u);
  ASSERT_TRUE(store.Save(*cache_.snapshot()).ok());

  SvidCache restarted;
  restarted.Restore(SvidStore(dir_.path(), trust_domain_).Load(Clock::now()).entries);
  auto needing = restarted.EntriesNeedingSvid(Clock::now());
  ASSERT_EQ(needing.size(), 1u);
  EXPECT_EQ(needing[0]->dns_names, std::vector<std::string>{"web.example.org"});
}

TEST_F(SvidStoreTest, TheFederatedBundlesComeBackWithTheSvids) {
  Synced({WorkloadEntry("e1", "/web", "1001")});
  cache_.SetFederatedBundles(Federated(PartnerBundle({&partner_}, 7)));
  SvidStore saving(dir_.path(), trust_domain_);
  ASSERT_TRUE(saving.Save(*cache_.snapshot()).ok());
  const fs::path kept = dir_.path() / "federated_bundles.json";
  struct stat st {};
  ASSERT_EQ(::stat(kept.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  SvidStore::Loaded loaded = SvidStore(dir_.path(), trust_domain_).Load(Clock::now());
  ASSERT_EQ(loaded.entries.size(), 1u);
  ASSERT_EQ(loaded.federated_bundles.size(), 1u);
  ASSERT_TRUE(loaded.federated_bundles.contains("partner.test"));
  EXPECT_EQ(Jwks(loaded.federated_bundles.at("partner.test")),
            Jwks(*cache_.snapshot()->federated_bundles.at("partner.test")))
      << "X.509 and JWT authorities and the sequence number, as serverd sent them";

  SvidCache restarted;
  ASSERT_TRUE(restarted.SetFederatedBundles(std::move(loaded.federated_bundles)));
  EXPECT_EQ(*restarted.snapshot()->federated_bundle_der.at("partner.test"),
            *cache_.snapshot()->federated_bundle_der.at("partner.test"));
}

TEST_F(SvidStoreTest, AFederatedBundleIsWrittenWhenItChangesAndRemovedWhenNoEntryNamesIt) {
  SvidStore store(dir_.path(), trust_domain_);
  Synced({WorkloadEntry("e1", "/web", "1001")});
  cache_.SetFederatedBundles(Federated(PartnerBundle({&partner_}, 1)));
  ASSERT_TRUE(store.Save(*cache_.snapshot()).ok());
  const fs::path kept = dir_.path() / "federated_bundles.json";
  const ino_t first = InodeOf(kept);
  ASSERT_NE(first, 0u);

  // Every sync brings the bundle again; unchanged, the file is left alone (a write would
  // rename a new file over it).
  EXPECT_FALSE(cache_.SetFederatedBundles(Federated(PartnerBundle({&partner_}, 1))));
  cache_.ApplyEntries({WorkloadEntry("e2", "/db", "1002")}, {}, 2, false);
  ASSERT_TRUE(store.Save(*cache_.snapshot()).ok());
  EXPECT_EQ(InodeOf(kept), first);

  TestCa successor("partner.test");
  ASSERT_TRUE(cache_.SetFederatedBundles(Federated(PartnerBundle({&partner_, &successor}, 2))));
  ASSERT_TRUE(store.Save(*cache_.snapshot()).ok());
  EXPECT_NE(InodeOf(kept), first);
  auto loaded = SvidStore(dir_.path(), trust_domain_).Load(Clock::now()).federated_bundles;
  ASSERT_TRUE(loaded.contains("partner.test"));
  EXPECT_EQ(loaded.at("partner.test").x509.authorities.size(), 2u);
  EXPECT_EQ(loaded.at("partner.test").sequence, 2u);

  cache_.SetFederatedBundles({});
  ASSERT_TRUE(store.Save(*cache_.snapshot()).ok());
  EXPECT_FALSE(fs::exists(kept));
  EXPECT_TRUE(SvidStore(dir_.path(), trust_domain_).Load(Clock::now()).federated_bundles.empty());
}

// The file is written whole, so one that does not read back was damaged outside the agent:
// none of it is trusted, and the SVIDs beside it are served all the same.
TEST_F(SvidStoreTest, KeptFederatedBundlesThatDoNotReadBackAreNamedInAWarningAndLeftOut) {
  SvidStore store(dir_.path(), trust_domain_);
  Synced({WorkloadEntry("e1", "/web", "1001")});
  cache_.SetFederatedBundles(Federated(PartnerBundle({&partner_}, 1)));
  ASSERT_TRUE(store.Save(*cache_.snapshot()).ok());
  const fs::path kept = dir_.path() / "federated_bundles.json";
  const std::string saved = sigil::testing::ReadFile(kept);
  ASSERT_NE(saved.find("\"spiffe://partner.test\""), std::string::npos) << saved;

  std::vector<std::string> warnings;
  const auto load = [&]() {
    warnings.clear();
    ConfigureLogging(LogLevel::kWarn, LogFormat::kText, [&](std::string_view line) { warnings.emplace_back(line); });
    SvidStore::Loaded loaded = SvidStore(dir_.path(), trust_domain_).Load(Clock::now());
    ConfigureLogging(LogLevel::kInfo, LogFormat::kText);
    EXPECT_EQ(loaded.entries.size(), 1u) << "the SVIDs are served all the same";
    EXPECT_TRUE(loaded.federated_bundles.empty());
    EXPECT_FALSE(fs::exists(kept)) << "a file left behind would be warned about at every start";
    return warnings.size() == 1 ? warnings[0] : "warnings: " + std::to_string(warnings.size());
  };

  sigil::testing::WriteFile(kept, saved.substr(0, saved.size() / 2));  // torn
  std::string warning = load();
  EXPECT_NE(warning.find("the kept federated bundles cannot be used"), std::string::npos) << warning;
  EXPECT_NE(warning.find("file=" + kept.string()), std::string::npos) << warning;
  EXPECT_NE(warning.find("not valid JSON"), std::string::npos) << warning;

  // A bundle claiming the agent's own trust domain would stand in for trust_bundle.jwks.
  std::string own = saved;
  own.replace(own.find("spiffe://partner.test"), std::string("spiffe://partner.test").size(), "spiffe://example.org");
  sigil::testing::WriteFile(kept, own);
  warning = load();
  EXPECT_NE(warning.find("own trust domain"), std::string::npos) << warning;

  std::string not_a_bundle = saved;
  not_a_bundle.replace(not_a_bundle.find("\"keys\""), 6, "\"kees\"");
  sigil::testing::WriteFile(kept, not_a_bundle);
  warning = load();
  EXPECT_NE(warning.find("the bundle of spiffe://partner.test"), std::string::npos) << warning;
}

TEST_F(SvidStoreTest, ClearRemovesEverything) {
  SvidStore store(dir_.path(), trust_domain_);
  Synced({WorkloadEntry("e1", "/web", "1001")});
  cache_.SetFederatedBundles(Federated(PartnerBundle({&partner_}, 1)));
  ASSERT_TRUE(store.Save(*cache_.snapshot()).ok());
  ASSERT_EQ(FilesIn(dir_.path()).size(), 3u);
  ASSERT_TRUE(store.Clear().ok());
  EXPECT_TRUE(FilesIn(dir_.path()).empty());
}

}  // namespace
}  // namespace sigil::agentd
