// The workload SVIDs agentd keeps in data_dir, on a real folder: what one agent saves the next
// reads back; what cannot be trusted any more (expired, a key not the certificate's, an entry
// serverd removed) is never read back.
#include "agentd/sync/svid_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

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

  std::vector<fs::path> FilesIn(const fs::path& dir) {
    std::vector<fs::path> files;
    for (const auto& file : fs::directory_iterator(dir)) files.push_back(file.path());
    return files;
  }

  TempDir dir_{"sigil-svid-store"};
  TrustDomain trust_domain_;
  TestCa ca_{"example.org"};
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

TEST_F(SvidStoreTest, ClearRemovesEverything) {
  SvidStore store(dir_.path(), trust_domain_);
  ASSERT_TRUE(store.Save(*Synced({WorkloadEntry("e1", "/web", "1001")})).ok());
  ASSERT_FALSE(FilesIn(dir_.path()).empty());
  ASSERT_TRUE(store.Clear().ok());
  EXPECT_TRUE(FilesIn(dir_.path()).empty());
}

}  // namespace
}  // namespace sigil::agentd
