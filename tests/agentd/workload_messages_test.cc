// The Workload API's messages built straight from a cache snapshot, with no socket or loop:
// what a caller's selectors give it, the bundle's DER as the cache encoded it once, and the
// gRPC frame the message is built in.
#include "agentd/workload/messages.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <gtest/gtest.h>

#include "agentd/workload/workload.pb.h"
#include "core/trust_bundle.h"
#include "tests/support/test_pki.h"

namespace sigil::agentd {
namespace {

using std::chrono::seconds;

const Selector kUid1001{"unix", "uid:1001"};

RegistrationEntry Entry(const std::string& id, const std::string& path, std::string hint = "") {
  RegistrationEntry e;
  e.id = id;
  e.spiffe_id = "spiffe://example.org" + path;
  e.parent_id = "spiffe://example.org/spire/agent/join_token/t";
  e.selectors = {kUid1001};
  e.hint = std::move(hint);
  e.revision = 1;
  return e;
}

std::shared_ptr<const WorkloadX509Svid> Svid(const RegistrationEntry& entry, uint8_t fill) {
  auto svid = std::make_shared<WorkloadX509Svid>();
  svid->issued_for = std::make_shared<const RegistrationEntry>(entry);
  svid->chain_der = Bytes(300, fill);
  svid->key_pkcs8_der = Bytes(138, static_cast<uint8_t>(fill + 1));
  svid->not_before = Clock::now();
  svid->not_after = svid->not_before + seconds(3600);
  return svid;
}

TrustBundle BundleOf(const testing::TestCa& ca) {
  TrustBundle bundle(*TrustDomain::Parse("example.org"));
  bundle.x509.Add(ca.cert());
  return bundle;
}

std::string DerOf(const testing::TestCa& ca) {
  auto der = CertToDer(ca.cert());
  return std::string(der->begin(), der->end());
}

X509SVIDResponse Parsed(const FramedMessage& message) {
  X509SVIDResponse response;
  EXPECT_TRUE(response.ParseFromArray(message.payload().data(), static_cast<int>(message.payload().size())));
  return response;
}

TEST(WorkloadMessagesTest, X509SvidResponseCarriesEveryMatchingSvidWithTheBundle) {
  const testing::TestCa ca("example.org");
  SvidCache cache;
  auto web = Entry("e1", "/web", "internal");
  auto api = Entry("e2", "/api", "internal");  // the same hint: kept only on the first
  cache.ApplyEntries({web, api}, {}, 1, true);
  cache.StoreSvids({Svid(web, 0x11), Svid(api, 0x22)});
  cache.SetBundle(BundleOf(ca));

  auto message = X509SvidResponseFor(*cache.snapshot(), SelectorSet({kUid1001}));
  ASSERT_TRUE(message.ok()) << message.status().ToString();
  ASSERT_TRUE(message->has_value());
  X509SVIDResponse response = Parsed(**message);
  ASSERT_EQ(response.svids_size(), 2);
  EXPECT_EQ(response.svids(0).spiffe_id(), "spiffe://example.org/api");  // ordered by SPIFFE ID
  EXPECT_EQ(response.svids(0).x509_svid(), std::string(300, '\x22'));
  EXPECT_EQ(response.svids(0).x509_svid_key(), std::string(138, '\x23'));
  EXPECT_EQ(response.svids(0).hint(), "internal");
  EXPECT_EQ(response.svids(1).spiffe_id(), "spiffe://example.org/web");
  EXPECT_EQ(response.svids(1).hint(), "");
  EXPECT_EQ(response.svids(0).bundle(), DerOf(ca));
  EXPECT_EQ(response.svids(1).bundle(), DerOf(ca));

  // Written field by field, it is the same bytes protobuf writes.
  std::string deterministic;
  {
    google::protobuf::io::StringOutputStream stream(&deterministic);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    response.SerializeToCodedStream(&coded);
  }
  EXPECT_EQ((*message)->payload(), deterministic);
}

TEST(WorkloadMessagesTest, NoEntryIsPermissionDeniedAndNoSvidYetIsNothingToSend) {
  const testing::TestCa ca("example.org");
  SvidCache cache;
  cache.ApplyEntries({Entry("e1", "/web")}, {}, 1, true);
  cache.SetBundle(BundleOf(ca));
  const SelectorSet other(std::vector<Selector>{{"unix", "uid:2000"}});
  for (auto build : {&X509SvidResponseFor, &X509BundlesResponseFor, &JwtBundlesResponseFor}) {
    auto denied = build(*cache.snapshot(), other);
    ASSERT_FALSE(denied.ok());
    EXPECT_EQ(denied.status().code(), Code::kPermissionDenied);
    EXPECT_EQ(denied.status().message(), "no identity issued");
  }
  auto waiting = X509SvidResponseFor(*cache.snapshot(), SelectorSet({kUid1001}));
  ASSERT_TRUE(waiting.ok());
  EXPECT_FALSE(waiting->has_value());
}

TEST(WorkloadMessagesTest, BundlesResponsesCarryTheOwnTrustDomain) {
  const testing::TestCa ca("example.org");
  SvidCache cache;
  cache.ApplyEntries({Entry("e1", "/web")}, {}, 1, true);
  cache.SetBundle(BundleOf(ca));

  auto x509 = X509BundlesResponseFor(*cache.snapshot(), SelectorSet({kUid1001}));
  ASSERT_TRUE(x509.ok() && x509->has_value());
  X509BundlesResponse bundles;
  ASSERT_TRUE(bundles.ParseFromArray((*x509)->payload().data(), static_cast<int>((*x509)->payload().size())));
  ASSERT_EQ(bundles.bundles().count("spiffe://example.org"), 1u);
  EXPECT_EQ(bundles.bundles().at("spiffe://example.org"), DerOf(ca));

  auto jwt = JwtBundlesResponseFor(*cache.snapshot(), SelectorSet({kUid1001}));
  ASSERT_TRUE(jwt.ok() && jwt->has_value());
  JWTBundlesResponse jwt_bundles;
  ASSERT_TRUE(jwt_bundles.ParseFromArray((*jwt)->payload().data(), static_cast<int>((*jwt)->payload().size())));
  EXPECT_EQ(jwt_bundles.bundles().count("spiffe://example.org"), 1u);
}

// The bundle's DER is encoded once, when the cache takes the bundle: every message of every
// snapshot after carries those same bytes until the bundle changes.
TEST(WorkloadMessagesTest, TheBundleDerIsEncodedOncePerBundle) {
  const testing::TestCa ca("example.org"), next_ca("example.org");
  SvidCache cache;
  auto web = Entry("e1", "/web");
  cache.ApplyEntries({web}, {}, 1, true);
  cache.SetBundle(BundleOf(ca));
  const auto encoded = cache.snapshot()->bundle_der;
  ASSERT_NE(encoded, nullptr);
  EXPECT_EQ(*encoded, DerOf(ca));

  cache.StoreSvid(Svid(web, 0x11));                 // a new snapshot, the same bundle
  cache.ApplyEntries({Entry("e2", "/api")}, {}, 2, false);
  EXPECT_EQ(cache.snapshot()->bundle_der, encoded);  // the same object, not encoded again
  EXPECT_FALSE(cache.SetBundle(BundleOf(ca)));
  EXPECT_EQ(cache.snapshot()->bundle_der, encoded);

  ASSERT_TRUE(cache.SetBundle(BundleOf(next_ca)));
  EXPECT_EQ(*cache.snapshot()->bundle_der, DerOf(next_ca));
}

// The message is built inside its gRPC frame: the payload is the frame's own bytes after the
// 5-byte prefix, so framing it copied nothing, and every stream is handed the same frame.
TEST(WorkloadMessagesTest, TheMessageIsBuiltInItsGrpcFrame) {
  const testing::TestCa ca("example.org");
  SvidCache cache;
  auto web = Entry("e1", "/web");
  cache.ApplyEntries({web}, {}, 1, true);
  cache.StoreSvid(Svid(web, 0x11));
  cache.SetBundle(BundleOf(ca));
  auto message = X509SvidResponseFor(*cache.snapshot(), SelectorSet({kUid1001}));
  ASSERT_TRUE(message.ok() && message->has_value());
  const std::string& frame = *(*message)->frame();
  const std::string_view payload = (*message)->payload();
  EXPECT_EQ(payload.data(), frame.data() + 5);
  ASSERT_EQ(frame.size(), payload.size() + 5);
  EXPECT_EQ(frame[0], '\0');  // not compressed
  const uint32_t length = (uint32_t{static_cast<uint8_t>(frame[1])} << 24) |
                          (uint32_t{static_cast<uint8_t>(frame[2])} << 16) |
                          (uint32_t{static_cast<uint8_t>(frame[3])} << 8) | static_cast<uint8_t>(frame[4]);
  EXPECT_EQ(length, payload.size());
  EXPECT_EQ(frame.capacity(), frame.size()) << "the frame was sized once, before it was written";
}

TEST(WorkloadMessagesTest, JwtSvidResponseKeepsTheFirstOfEachHint) {
  JWTSVIDResponse response;
  ASSERT_TRUE(response.ParseFromString(JwtSvidResponse(
      {{"spiffe://example.org/a", "t1", "h"}, {"spiffe://example.org/b", "t2", "h"}, {"spiffe://example.org/c", "t3", ""}})));
  ASSERT_EQ(response.svids_size(), 3);
  EXPECT_EQ(response.svids(0).hint(), "h");
  EXPECT_EQ(response.svids(1).hint(), "");
  EXPECT_EQ(response.svids(1).svid(), "t2");
}

}  // namespace
}  // namespace sigil::agentd
