#include "agentd/sync/svid_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <limits>
#include <thread>

#include "core/x509_ca.h"
#include "tests/support/test_pki.h"

namespace sigil::agentd {
namespace {

using std::chrono::seconds;

RegistrationEntry Entry(const std::string& id, const std::string& path, std::vector<Selector> selectors,
                        int64_t revision = 1) {
  RegistrationEntry e;
  e.id = id;
  e.spiffe_id = "spiffe://example.org" + path;
  e.parent_id = "spiffe://example.org/spire/agent/join_token/t";
  e.selectors = std::move(selectors);
  e.revision = revision;
  return e;
}

std::shared_ptr<const WorkloadX509Svid> Svid(const RegistrationEntry& entry, Clock::time_point not_before, seconds ttl) {
  auto svid = std::make_shared<WorkloadX509Svid>();
  svid->issued_for = std::make_shared<const RegistrationEntry>(entry);
  svid->chain_der = {0x30, 0x01};
  svid->not_before = not_before;
  svid->not_after = not_before + ttl;
  return svid;
}

const Selector kUid1001{"unix", "uid:1001"};
const Selector kGid10{"unix", "gid:10"};

TEST(SvidCacheTest, WorkloadsGetTheSvidsOfEveryMatchingEntry) {
  SvidCache cache;
  auto web = Entry("e1", "/web", {kUid1001});
  auto web_admin = Entry("e2", "/admin", {kUid1001, kGid10});
  auto db = Entry("e3", "/db", {{"unix", "uid:2000"}});
  cache.ApplyEntries({web, web_admin, db}, {}, 3, true);
  const auto now = Clock::now();
  for (const auto* e : {&web, &web_admin, &db}) cache.StoreSvid(Svid(*e, now, seconds(3600)));

  size_t matched = 0;
  auto only_uid = cache.SvidsFor(SelectorSet({kUid1001}), &matched);
  ASSERT_EQ(only_uid.size(), 1u);
  EXPECT_EQ(only_uid[0]->spiffe_id(), "spiffe://example.org/web");
  auto both = cache.SvidsFor(SelectorSet({kUid1001, kGid10, {"unix", "user:web"}}));
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[0]->spiffe_id(), "spiffe://example.org/admin");  // ordered by SPIFFE ID
  EXPECT_TRUE(cache.SvidsFor(SelectorSet(std::vector<Selector>{{"unix", "uid:9"}}), &matched).empty());
  EXPECT_EQ(matched, 0u);
}

// serverd may state a validity at both ends of int64 seconds, which FromUnixSeconds saturates
// to the clock's ends (the fuzz corpus input found-csr-result-validity-at-int64-ends): half of
// the lifetime must not overflow into "rotate now", which re-signed such an SVID on every round.
TEST(SvidCacheTest, HalfLifeAtTheClocksEndsIsTheirMidpoint) {
  const auto nanoseconds_from_epoch = [](Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  };
  WorkloadX509Svid widest;
  widest.not_before = FromUnixSeconds(std::numeric_limits<int64_t>::min());
  widest.not_after = FromUnixSeconds(std::numeric_limits<int64_t>::max());
  EXPECT_LE(std::abs(nanoseconds_from_epoch(widest.RotateAt())), 1);

  const auto now = Clock::now();
  WorkloadX509Svid endless;
  endless.not_before = now;
  endless.not_after = Clock::time_point::max();
  EXPECT_GT(endless.RotateAt(), now + std::chrono::hours(24 * 365 * 100));

  WorkloadJwtSvid jwt;
  jwt.issued_at = now;
  jwt.expires_at = FromUnixSeconds(std::numeric_limits<int64_t>::min());
  EXPECT_LT(jwt.RefreshAt(), now);
  jwt.expires_at = now + seconds(100);
  EXPECT_EQ(jwt.RefreshAt(), now + seconds(50));
}

TEST(SvidCacheTest, RotationAtHalfLifeAndOnEntryChange) {
  SvidCache cache;
  auto web = Entry("e1", "/web", {kUid1001});
  cache.ApplyEntries({web}, {}, 1, true);
  EXPECT_EQ(cache.EntriesNeedingSvid(Clock::now()).size(), 1u);  // no SVID yet
  EXPECT_FALSE(cache.NextRotation(Clock::now()).has_value());

  const auto issued = Clock::now();
  cache.StoreSvid(Svid(web, issued, seconds(100)));
  EXPECT_TRUE(cache.EntriesNeedingSvid(issued + seconds(49)).empty());
  EXPECT_EQ(cache.EntriesNeedingSvid(issued + seconds(50)).size(), 1u);
  EXPECT_EQ(*cache.NextRotation(issued), issued + seconds(50));
  // Past half-life the SVID is due, not next: a round that could not renew it must not wake
  // again at once for it.
  EXPECT_FALSE(cache.NextRotation(issued + seconds(50)).has_value());

  // A new DNS name needs a new SVID at once; the old one keeps serving until it comes.
  auto changed = web;
  changed.dns_names = {"web.example.org"};
  changed.revision = 2;
  cache.ApplyEntries({changed}, {}, 2, false);
  EXPECT_EQ(cache.EntriesNeedingSvid(issued).size(), 1u);
  EXPECT_EQ(cache.SvidsFor(SelectorSet({kUid1001})).size(), 1u);

  // A selector change alone does not.
  cache.StoreSvid(Svid(changed, issued, seconds(100)));
  auto reselected = changed;
  reselected.selectors = {kUid1001, kGid10};
  cache.ApplyEntries({reselected}, {}, 3, false);
  EXPECT_TRUE(cache.EntriesNeedingSvid(issued).empty());
}

TEST(SvidCacheTest, RemovedEntriesTakeTheirSvidsAndLateSvidsAreDropped) {
  SvidCache cache;
  auto a = Entry("a", "/a", {kUid1001});
  auto b = Entry("b", "/b", {kUid1001});
  cache.ApplyEntries({a, b}, {}, 2, true);
  cache.StoreSvid(Svid(a, Clock::now(), seconds(60)));
  cache.StoreSvid(Svid(b, Clock::now(), seconds(60)));
  cache.ApplyEntries({}, {"a"}, 3, false);
  auto svids = cache.SvidsFor(SelectorSet({kUid1001}));
  ASSERT_EQ(svids.size(), 1u);
  EXPECT_EQ(svids[0]->entry_id(), "b");
  cache.StoreSvid(Svid(a, Clock::now(), seconds(60)));  // signed before the removal arrived
  EXPECT_EQ(cache.snapshot()->entries->count("a"), 0u);
  cache.ApplyEntries({Entry("c", "/c", {kGid10})}, {}, 4, true);  // a full sync replaces
  EXPECT_EQ(cache.snapshot()->entries->size(), 1u);
  EXPECT_EQ(cache.snapshot()->revision, 4);
}

TEST(SvidCacheTest, ExpiredSvidsAreDroppedAndTheirEntriesWaitForNewOnes) {
  SvidCache cache;
  auto short_lived = Entry("short", "/short", {kUid1001});
  auto long_lived = Entry("long", "/long", {kUid1001});
  cache.ApplyEntries({short_lived, long_lived}, {}, 2, true);
  const auto now = Clock::now();
  cache.StoreSvid(Svid(short_lived, now - seconds(30), seconds(40)));  // expires in 10 s
  cache.StoreSvid(Svid(long_lived, now - seconds(30), seconds(3600)));
  EXPECT_EQ(cache.NextExpiry(), now + seconds(10));

  const uint64_t version = cache.snapshot()->version;
  EXPECT_EQ(cache.DropExpiredSvids(now), 0u);
  EXPECT_EQ(cache.snapshot()->version, version) << "nothing expired, nothing published";
  EXPECT_EQ(cache.SvidsFor(SelectorSet({kUid1001})).size(), 2u);

  EXPECT_EQ(cache.DropExpiredSvids(now + seconds(10)), 1u);
  EXPECT_GT(cache.snapshot()->version, version);
  auto served = cache.SvidsFor(SelectorSet({kUid1001}));
  ASSERT_EQ(served.size(), 1u);
  EXPECT_EQ(served[0]->entry_id(), "long");
  EXPECT_EQ(cache.NextExpiry(), now + seconds(3570));
  // The entry stays, waiting for an SVID.
  size_t matched = 0;
  cache.SvidsFor(SelectorSet({kUid1001}), &matched);
  EXPECT_EQ(matched, 2u);
  const auto due = cache.EntriesNeedingSvid(now + seconds(10));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0]->id, "short");
}

// Each SVID shares its entry object, and a new map shares the entries of the one before: an
// entry resent unchanged must keep the object held, and an entry replaced must take the key that
// views its id with it (ASan watches the freed one).
TEST(SvidCacheTest, EntriesAreSharedBySvidsAndSnapshotsAndKeysFollowReplacedEntries) {
  SvidCache cache;
  auto a = Entry("entry-with-an-id-longer-than-short-strings-a", "/a", {kUid1001});
  auto b = Entry("entry-with-an-id-longer-than-short-strings-b", "/b", {kUid1001});
  cache.ApplyEntries({a, b}, {}, 1, true);
  const auto held_a = cache.snapshot()->entries->at(a.id).entry;
  auto svid = std::make_shared<WorkloadX509Svid>();
  svid->issued_for = held_a;
  svid->not_before = Clock::now();
  svid->not_after = svid->not_before + seconds(60);
  const auto entries_before = cache.snapshot()->entries;
  cache.StoreSvid(svid);
  EXPECT_NE(cache.snapshot()->entries, entries_before);
  EXPECT_EQ(cache.snapshot()->entries->at(a.id).entry, held_a);  // shared, not copied
  EXPECT_EQ(cache.snapshot()->entries->at(a.id).svid->issued_for, held_a);
  EXPECT_EQ(entries_before->at(a.id).svid, nullptr);  // the snapshot before is as it was

  cache.ApplyEntries({a}, {}, 2, false);  // resent unchanged: the same object stays
  EXPECT_EQ(cache.snapshot()->entries->at(a.id).entry, held_a);
  EXPECT_EQ(cache.EntriesNeedingSvid(Clock::now()).size(), 1u);  // only b

  // b replaced twice over by changed entries, nothing else holding the old objects.
  for (int revision : {3, 4}) {
    auto changed_b = b;
    changed_b.hint = "hint-" + std::to_string(revision);
    changed_b.revision = revision;
    cache.ApplyEntries({changed_b}, {}, revision, false);
  }
  const auto snapshot = cache.snapshot();
  ASSERT_EQ(snapshot->entries->size(), 2u);
  EXPECT_EQ(snapshot->entries->at(b.id).entry->hint, "hint-4");
  EXPECT_EQ(snapshot->entries->begin()->first, a.id);
  EXPECT_EQ(std::next(snapshot->entries->begin())->first, b.id);
  // a's shape changed: its SVID stays until a new one arrives, and is due for one.
  auto moved_a = a;
  moved_a.spiffe_id = "spiffe://example.org/a2";
  cache.ApplyEntries({moved_a}, {}, 5, false);
  EXPECT_EQ(cache.snapshot()->entries->at(a.id).svid->spiffe_id(), "spiffe://example.org/a");
  const auto due = cache.EntriesNeedingSvid(Clock::now());
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0]->spiffe_id, "spiffe://example.org/a2");
}

TEST(SvidCacheTest, JwtsAreReusedUntilHalfLifePerAudienceSet) {
  SvidCache cache;
  const auto now = Clock::now();
  cache.StoreJwt({"spiffe://example.org/web", "token-1", "", now, now + seconds(300)}, {"b", "a"});
  auto found = cache.FindJwt("spiffe://example.org/web", {"a", "b"}, now + seconds(10));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->token, "token-1");
  EXPECT_FALSE(cache.FindJwt("spiffe://example.org/web", {"a"}, now).has_value());
  EXPECT_FALSE(cache.FindJwt("spiffe://example.org/web", {"a", "b"}, now + seconds(150)).has_value());
}

TEST(SvidCacheTest, JwtsBeyondTheBoundDropTheLeastRecentlyUsed) {
  SvidCache cache(3);
  const auto now = Clock::now();
  const std::string web = "spiffe://example.org/web";
  auto store = [&](const std::string& audience) {
    cache.StoreJwt({web, "token-" + audience, "", now, now + seconds(300)}, {audience});
  };
  auto held = [&](const std::string& audience) { return cache.FindJwt(web, {audience}, now).has_value(); };
  store("a");
  store("b");
  store("c");
  ASSERT_TRUE(held("a"));  // now the most recent: b is the least
  store("d");
  EXPECT_EQ(cache.jwt_count(), 3u);
  EXPECT_FALSE(held("b"));
  EXPECT_TRUE(held("a"));
  EXPECT_TRUE(held("c"));
  EXPECT_TRUE(held("d"));

  // The same audiences again replace their token in place; nothing else goes.
  cache.StoreJwt({web, "token-a2", "", now, now + seconds(300)}, {"a"});
  EXPECT_EQ(cache.jwt_count(), 3u);
  EXPECT_EQ(cache.FindJwt(web, {"a"}, now)->token, "token-a2");
  EXPECT_TRUE(held("c"));
  EXPECT_TRUE(held("d"));

  // As a workload asking for ever new audiences would: the cache never grows past its bound,
  // and the last ones asked for are the ones kept.
  for (int i = 0; i < 3000; ++i) store("aud-" + std::to_string(i));
  EXPECT_EQ(cache.jwt_count(), 3u);
  for (int i = 2997; i < 3000; ++i) EXPECT_TRUE(held("aud-" + std::to_string(i))) << i;
  EXPECT_FALSE(held("aud-2996"));
  EXPECT_FALSE(held("a"));
}

TEST(SvidCacheTest, ExpiredJwtsLeaveOnTheNextStore) {
  SvidCache cache(10);
  const auto now = Clock::now();
  cache.StoreJwt({"spiffe://example.org/web", "old", "", now - seconds(20), now - seconds(10)}, {"a"});
  cache.StoreJwt({"spiffe://example.org/web", "new", "", now, now + seconds(300)}, {"b"});
  EXPECT_EQ(cache.jwt_count(), 1u);
  EXPECT_TRUE(cache.FindJwt("spiffe://example.org/web", {"b"}, now).has_value());
}

TEST(SvidCacheTest, DefaultJwtBoundIsSpires) {
  SvidCache cache;
  const auto now = Clock::now();
  for (int i = 0; i < 1500; ++i) {
    cache.StoreJwt({"spiffe://example.org/web", "t", "", now, now + seconds(300)}, {"aud-" + std::to_string(i)});
  }
  EXPECT_EQ(cache.jwt_count(), kDefaultJwtSvidCacheMaxSize);
  EXPECT_EQ(kDefaultJwtSvidCacheMaxSize, 1000u);
}

TEST(SvidCacheTest, SubscribersHearEveryChange) {
  SvidCache cache;
  std::atomic<int> heard{0};
  const uint64_t id = cache.Subscribe([&] { ++heard; });
  auto a = Entry("a", "/a", {kUid1001});
  cache.ApplyEntries({a}, {}, 1, true);
  cache.StoreSvid(Svid(a, Clock::now(), seconds(60)));
  EXPECT_EQ(heard.load(), 2);
  EXPECT_EQ(cache.snapshot()->version, 2u);
  cache.Unsubscribe(id);
  cache.ApplyEntries({}, {"a"}, 2, false);
  EXPECT_EQ(heard.load(), 2);
}

TrustBundle BundleOf(const std::string& td, const std::vector<const testing::TestCa*>& cas,
                     const std::map<std::string, EVP_PKEY*>& jwt_keys = {}) {
  TrustBundle bundle(*TrustDomain::Parse(td));
  for (const auto* ca : cas) bundle.x509.Add(ca->cert());
  for (const auto& [kid, key] : jwt_keys) bundle.jwt.authorities.emplace(kid, JwtAuthority(UpRef(key)));
  return bundle;
}

TEST(SvidCacheTest, BundlesArePublishedOnlyWhenTheyChange) {
  SvidCache cache;
  std::atomic<int> heard{0};
  cache.Subscribe([&] { ++heard; });
  const testing::TestCa ca("example.org"), next_ca("example.org"), partner("partner.test");
  const auto jwt_key = ca.IssueSvid("spiffe://example.org/jwt-key");

  EXPECT_EQ(cache.snapshot()->bundle, nullptr);
  EXPECT_TRUE(cache.SetBundles(BundleOf("example.org", {&ca}, {{"k1", jwt_key.key.get()}}),
                               {{"partner.test", BundleOf("partner.test", {&partner})}}));
  EXPECT_EQ(heard.load(), 1);
  auto snapshot = cache.snapshot();
  ASSERT_NE(snapshot->bundle, nullptr);
  EXPECT_EQ(snapshot->bundle->x509.authorities.size(), 1u);
  EXPECT_EQ(snapshot->bundle->jwt.authorities.count("k1"), 1u);
  ASSERT_EQ(snapshot->federated_bundles.count("partner.test"), 1u);

  // The same keys again, as every sync brings them: nothing to tell anyone.
  EXPECT_FALSE(cache.SetBundles(BundleOf("example.org", {&ca}, {{"k1", jwt_key.key.get()}}),
                                {{"partner.test", BundleOf("partner.test", {&partner})}}));
  EXPECT_FALSE(cache.SetBundle(BundleOf("example.org", {&ca}, {{"k1", jwt_key.key.get()}})));
  EXPECT_EQ(heard.load(), 1);
  EXPECT_EQ(cache.snapshot()->version, snapshot->version);

  // A new CA beside the old one changes the own bundle and keeps the federated one.
  EXPECT_TRUE(cache.SetBundle(BundleOf("example.org", {&ca, &next_ca}, {{"k1", jwt_key.key.get()}})));
  EXPECT_EQ(heard.load(), 2);
  EXPECT_EQ(cache.snapshot()->bundle->x509.authorities.size(), 2u);
  EXPECT_EQ(cache.snapshot()->federated_bundles.size(), 1u);

  // A JWT key going away is a change, and so is a federated bundle going away.
  EXPECT_TRUE(cache.SetBundles(BundleOf("example.org", {&ca, &next_ca}), {{"partner.test", BundleOf("partner.test", {&partner})}}));
  EXPECT_TRUE(cache.SetBundles(BundleOf("example.org", {&ca, &next_ca}), {}));
  EXPECT_EQ(heard.load(), 4);
  EXPECT_TRUE(cache.snapshot()->federated_bundles.empty());
}

// An authority the bundle marks tainted: what it issued is due now, whatever its half-life, and
// a JWT-SVID it signed is not handed out again; nothing else moves.
TEST(SvidCacheTest, WhatATaintedAuthorityIssuedIsDueAtOnce) {
  SvidCache cache;
  const testing::TestCa ca("example.org");
  auto web = Entry("e1", "/web", {kUid1001});
  auto db = Entry("e2", "/db", {kUid1001});
  cache.ApplyEntries({web, db}, {}, 1, true);
  const auto now = Clock::now();
  auto by_old = std::make_shared<WorkloadX509Svid>(*Svid(web, now, seconds(3600)));
  by_old->issuing_authority_ids = {"1e", "0a"};  // an intermediate issued by 0a issued the leaf
  auto by_new = std::make_shared<WorkloadX509Svid>(*Svid(db, now, seconds(3600)));
  by_new->issuing_authority_ids = {"0b"};
  cache.StoreSvids({by_old, by_new});
  const std::string token_k1 = "eyJraWQiOiJrMSJ9.e30.c2ln";  // header {"kid":"k1"}
  const std::string token_k2 = "eyJraWQiOiJrMiJ9.e30.c2ln";  // header {"kid":"k2"}
  cache.StoreJwt({"spiffe://example.org/web", token_k1, "", now, now + seconds(300)}, {"a"});
  cache.StoreJwt({"spiffe://example.org/web", token_k2, "", now, now + seconds(300)}, {"b"});
  EXPECT_TRUE(cache.EntriesNeedingSvid(now).empty());

  TrustBundle bundle = BundleOf("example.org", {&ca});
  bundle.tainted_x509_authorities = {"0a"};
  EXPECT_TRUE(cache.SetBundle(bundle)) << "a taint is a change even when the keys are the same";
  auto due = cache.EntriesNeedingSvid(now);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0]->id, "e1");
  EXPECT_FALSE(cache.SetBundle(bundle));

  bundle.tainted_jwt_authorities = {"k1"};
  EXPECT_TRUE(cache.SetBundle(bundle));
  EXPECT_FALSE(cache.FindJwt("spiffe://example.org/web", {"a"}, now));
  ASSERT_TRUE(cache.FindJwt("spiffe://example.org/web", {"b"}, now));
  EXPECT_EQ(cache.FindJwt("spiffe://example.org/web", {"b"}, now)->token, token_k2);
}

TEST(SvidCacheTest, EntriesForListsMatchesThatHaveNoSvidYet) {
  SvidCache cache;
  cache.ApplyEntries({Entry("e2", "/b", {kUid1001}), Entry("e1", "/a", {kUid1001, kGid10}),
                      Entry("e3", "/c", {{"unix", "uid:2000"}})},
                     {}, 1, true);
  auto entries = cache.EntriesFor(SelectorSet({kUid1001, kGid10}));
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].spiffe_id, "spiffe://example.org/a");
  EXPECT_EQ(entries[1].spiffe_id, "spiffe://example.org/b");
  EXPECT_TRUE(cache.SvidsFor(SelectorSet({kUid1001, kGid10})).empty());
}

TEST(SvidCacheTest, ReadersNeverSeeHalfAppliedChanges) {
  SvidCache cache;
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (!stop) {
        auto snapshot = cache.snapshot();
        for (const auto& [id, cached] : *snapshot->entries) {
          if (cached.svid && cached.svid->entry_id() != id) ++torn;  // an SVID under another entry
        }
        (void)cache.SvidsFor(SelectorSet({kUid1001}));
      }
    });
  }
  for (int i = 0; i < 500; ++i) {
    auto e = Entry("e" + std::to_string(i % 20), "/w" + std::to_string(i % 20), {kUid1001}, i);
    cache.ApplyEntries({e}, {}, i, false);
    cache.StoreSvid(Svid(e, Clock::now(), seconds(60)));
    if (i % 7 == 0) cache.ApplyEntries({}, {"e" + std::to_string((i + 3) % 20)}, i, false);
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(torn.load(), 0);
}

}  // namespace
}  // namespace sigil::agentd
