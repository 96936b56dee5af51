// The Workload API messages keep the standard's wire numbers: bytes written by hand from the
// standard's field numbers parse into the generated classes.
#include <gtest/gtest.h>

#include "agentd/workload/workload.pb.h"

namespace {

TEST(WorkloadProtoTest, X509SvidFieldsHaveTheStandardsNumbers) {
  // X509SVIDResponse{svids: [X509SVID{spiffe_id=1:"a", x509_svid=2:"b", x509_svid_key=3:"c",
  // bundle=4:"d", hint=5:"e"}]}
  const std::string inner = std::string("\x0a\x01" "a" "\x12\x01" "b" "\x1a\x01" "c" "\x22\x01" "d" "\x2a\x01" "e", 15);
  const std::string outer = std::string("\x0a") + static_cast<char>(inner.size()) + inner;
  X509SVIDResponse response;
  ASSERT_TRUE(response.ParseFromString(outer));
  ASSERT_EQ(response.svids_size(), 1);
  EXPECT_EQ(response.svids(0).spiffe_id(), "a");
  EXPECT_EQ(response.svids(0).x509_svid(), "b");
  EXPECT_EQ(response.svids(0).x509_svid_key(), "c");
  EXPECT_EQ(response.svids(0).bundle(), "d");
  EXPECT_EQ(response.svids(0).hint(), "e");
}

TEST(WorkloadProtoTest, JwtMessagesHaveTheStandardsNumbers) {
  JWTSVIDRequest request;
  request.add_audience("aud");
  request.set_spiffe_id("spiffe://example.org/web");
  const std::string bytes = request.SerializeAsString();
  EXPECT_EQ(bytes.substr(0, 5), std::string("\x0a\x03" "aud", 5));  // audience = 1
  EXPECT_EQ(bytes[5], '\x12');                                      // spiffe_id = 2
  ValidateJWTSVIDRequest validate;
  validate.set_audience("a");
  validate.set_svid("t");
  EXPECT_EQ(validate.SerializeAsString(), std::string("\x0a\x01" "a" "\x12\x01" "t", 6));
}

TEST(WorkloadProtoTest, ServiceHasNoPackageSoPathsAreTheStandards) {
  const auto* service = X509SVIDRequest::descriptor()->file()->FindServiceByName("SpiffeWorkloadAPI");
  ASSERT_NE(service, nullptr);
  EXPECT_EQ(service->full_name(), "SpiffeWorkloadAPI");  // /SpiffeWorkloadAPI/FetchX509SVID
  for (const char* method : {"FetchX509SVID", "FetchX509Bundles", "FetchJWTSVID", "FetchJWTBundles", "ValidateJWTSVID"}) {
    EXPECT_NE(service->FindMethodByName(method), nullptr) << method;
  }
  EXPECT_TRUE(service->FindMethodByName("FetchX509SVID")->server_streaming());
  EXPECT_FALSE(service->FindMethodByName("FetchJWTSVID")->server_streaming());
}

}  // namespace
