#include "core/wire/wire.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <limits>
#include <string>
#include <vector>

#include "core/wire/convert.h"
#include "core/x509_ca.h"

namespace sigil::wire {
namespace {

Bytes SampleCsrBatch() {
  flatbuffers::FlatBufferBuilder builder;
  std::vector<flatbuffers::Offset<CsrItem>> items;
  for (int i = 0; i < 3; ++i) {
    std::vector<uint8_t> csr(100 + i, static_cast<uint8_t>(i));
    items.push_back(CreateCsrItem(builder, builder.CreateString("entry-" + std::to_string(i)),
                                  builder.CreateVector(csr)));
  }
  return FinishMessage(builder, CreateCsrBatchRequest(builder, builder.CreateVector(items)));
}

TEST(WireTest, CsrBatchRoundTrips) {
  const Bytes bytes = SampleCsrBatch();
  auto request = VerifiedMessage<CsrBatchRequest>(bytes);
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  const auto* items = (*request)->items();
  ASSERT_NE(items, nullptr);
  ASSERT_EQ(items->size(), 3u);
  for (flatbuffers::uoffset_t i = 0; i < items->size(); ++i) {
    EXPECT_EQ(StringOf(items->Get(i)->entry_id()), "entry-" + std::to_string(i));
    auto csr = BytesOf(items->Get(i)->csr());
    EXPECT_EQ(csr.size(), 100u + i);
    EXPECT_EQ(csr[0], i);
  }
}

TEST(WireTest, AttestationRequestCarriesItsJoinToken) {
  flatbuffers::FlatBufferBuilder builder;
  auto token = CreateJoinTokenAttestation(builder, builder.CreateString("tok-123"));
  std::vector<uint8_t> csr{1, 2, 3};
  auto request = CreateAttestationRequest(builder, AttestationData::JoinTokenAttestation,
                                          token.Union(), builder.CreateVector(csr));
  const Bytes bytes = FinishMessage(builder, request);

  auto read = VerifiedMessage<AttestationRequest>(bytes);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  const auto* join_token = (*read)->data_as_JoinTokenAttestation();
  ASSERT_NE(join_token, nullptr);
  EXPECT_EQ(StringOf(join_token->token()), "tok-123");
  EXPECT_EQ(std::vector<uint8_t>(BytesOf((*read)->csr()).begin(), BytesOf((*read)->csr()).end()), csr);
}

TEST(WireTest, EntrySyncRoundTripsEveryField) {
  flatbuffers::FlatBufferBuilder builder;
  std::vector<flatbuffers::Offset<Selector>> selectors{
      CreateSelector(builder, builder.CreateString("unix"), builder.CreateString("uid:1001")),
      CreateSelector(builder, builder.CreateString("k8s"), builder.CreateString("pod-label:app:web"))};
  auto entry = CreateEntry(builder, builder.CreateString("e1"),
                           builder.CreateString("spiffe://example.org/web"),
                           builder.CreateString("spiffe://example.org/spire/agent/x"),
                           builder.CreateVector(selectors), 3600, 300,
                           builder.CreateVectorOfStrings({"web.example.org"}),
                           builder.CreateVectorOfStrings({"other.org"}), true, false, 1700000000,
                           builder.CreateString("hint"), 42);
  std::vector<flatbuffers::Offset<Entry>> entries{entry};
  auto response = CreateEntrySyncResponse(builder, 42, true, builder.CreateVector(entries),
                                          builder.CreateVectorOfStrings({"gone"}));
  const Bytes bytes = FinishMessage(builder, response);

  auto read = VerifiedMessage<EntrySyncResponse>(bytes);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ((*read)->revision(), 42u);
  EXPECT_TRUE((*read)->full());
  ASSERT_EQ((*read)->entries()->size(), 1u);
  const Entry* e = (*read)->entries()->Get(0);
  EXPECT_EQ(StringOf(e->spiffe_id()), "spiffe://example.org/web");
  EXPECT_EQ(StringOf(e->selectors()->Get(1)->value()), "pod-label:app:web");
  EXPECT_EQ(e->x509_svid_ttl_seconds(), 3600);
  EXPECT_EQ(e->jwt_svid_ttl_seconds(), 300);
  EXPECT_EQ(StringOf(e->dns_names()->Get(0)), "web.example.org");
  EXPECT_TRUE(e->admin());
  EXPECT_FALSE(e->downstream());
  EXPECT_EQ(e->expires_at(), 1700000000);
  EXPECT_EQ(e->revision(), 42u);
  EXPECT_EQ(StringOf((*read)->removed_entry_ids()->Get(0)), "gone");
}

TEST(WireTest, JwtAuthorityExpiriesAtTheEndsOfInt64DoNotOverflow) {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  ASSERT_TRUE(key);
  auto der = PublicKeyToDer(key.get());
  ASSERT_TRUE(der.ok());
  flatbuffers::FlatBufferBuilder builder;
  std::vector<flatbuffers::Offset<JwtAuthority>> authorities{
      CreateJwtAuthority(builder, builder.CreateString("far"), builder.CreateVector(*der),
                         std::numeric_limits<int64_t>::max()),
      CreateJwtAuthority(builder, builder.CreateString("past"), builder.CreateVector(*der),
                         std::numeric_limits<int64_t>::min())};
  auto jwt = builder.CreateVector(authorities);
  auto bundle = CreateTrustBundle(builder, builder.CreateString("example.org"), 0, jwt, 1, 0);
  builder.Finish(bundle);
  auto read = TrustBundleFromWire(flatbuffers::GetRoot<TrustBundle>(builder.GetBufferPointer()));
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  // Saturated, not wrapped: the far one still lies ahead and the old one behind.
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(read->jwt.authorities.at("far").expires_at, TimePoint::max());
  EXPECT_GT(*read->jwt.authorities.at("far").expires_at, now);
  EXPECT_LT(*read->jwt.authorities.at("past").expires_at, now);
}

TEST(WireTest, RefusesEmptyBuffer) {
  auto read = VerifiedMessage<CsrBatchRequest>({});
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), Code::kInvalidArgument);
  EXPECT_NE(read.status().message().find("too short"), std::string::npos);
}

TEST(WireTest, RefusesEveryTruncation) {
  const Bytes bytes = SampleCsrBatch();
  for (size_t length = 0; length < bytes.size(); ++length) {
    auto read = VerifiedMessage<CsrBatchRequest>(std::span(bytes.data(), length));
    EXPECT_FALSE(read.ok()) << "accepted a message cut to " << length << " of " << bytes.size();
  }
}

TEST(WireTest, RefusesWrongIdentifier) {
  Bytes bytes = SampleCsrBatch();
  bytes[4] = 'X';
  auto read = VerifiedMessage<CsrBatchRequest>(bytes);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("identifier"), std::string::npos);
}

TEST(WireTest, RefusesBodyOfAnotherKind) {
  const Bytes bytes = SampleCsrBatch();
  auto read = VerifiedMessage<CsrBatchResponse>(bytes);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().message(),
            "message carries a CsrBatchRequest where a CsrBatchResponse was expected");
}

TEST(WireTest, RefusesGarbledOffsets) {
  const Bytes good = SampleCsrBatch();
  // An offset pointing far outside the buffer in the root position.
  Bytes garbled = good;
  garbled[0] = 0xff;
  garbled[1] = 0xff;
  garbled[2] = 0xff;
  garbled[3] = 0x7f;
  EXPECT_FALSE(VerifiedMessage<CsrBatchRequest>(garbled).ok());

  // Every single-byte corruption either fails verification or still reads safely; with
  // the sanitizer builds this doubles as a fuzz of the verifier.
  int refused = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    Bytes copy = good;
    copy[i] ^= 0xa5;
    auto read = VerifiedMessage<CsrBatchRequest>(copy);
    if (!read.ok()) {
      ++refused;
      continue;
    }
    if (const auto* items = (*read)->items()) {
      for (const auto* item : *items) {
        (void)StringOf(item->entry_id());
        (void)BytesOf(item->csr());
      }
    }
  }
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace sigil::wire
