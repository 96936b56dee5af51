// Malformed admin API bodies sent to a real `serverd run` over its admin socket: each is refused
// with InvalidArgument naming what was wrong, and serverd keeps serving afterwards.
#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <limits>
#include <nlohmann/json.hpp>

#include "core/base64url.h"
#include "core/csr.h"
#include "core/trust_bundle.h"
#include "core/x509_ca.h"
#include "serverd/admin/admin_server.h"
#include "tests/support/serverd_process.h"

namespace sigil::testing {
namespace {

using nlohmann::json;

class AdminJsonTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto hsm = SoftHsm::Create();
    ASSERT_TRUE(hsm.ok()) << hsm.status().ToString();
    hsm_ = std::move(*hsm).release();
    auto server = ServerdProcess::Create(*hsm_, "admin-json");
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server).release();
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
  }
  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      server_->Stop();
      EXPECT_EQ(server_->logs().find("Sanitizer"), std::string::npos) << server_->logs();
    }
    delete server_;
    delete hsm_;
    server_ = nullptr;
    hsm_ = nullptr;
  }

  static Result<json> Call(const std::string& path, const std::string& body) {
    return serverd::SocketAdminClient(server_->socket_path().string()).Call(path, json::parse(body));
  }

  // `body` to `path` is InvalidArgument whose message has `names`, and serverd still answers.
  static void ExpectRefused(const std::string& path, const std::string& body, const std::string& names) {
    auto answer = Call(path, body);
    ASSERT_FALSE(answer.ok()) << path << " " << body << " was accepted: " << answer->dump();
    EXPECT_EQ(answer.status().code(), Code::kInvalidArgument) << path << " " << body << ": " << answer.status().ToString();
    EXPECT_NE(answer.status().message().find(names), std::string::npos)
        << path << " " << body << ": " << answer.status().message();
    auto health = Call("/v1/health/Check", "{}");
    ASSERT_TRUE(health.ok()) << "serverd stopped answering after " << path << " " << body << ": "
                             << health.status().ToString() << "\n" << server_->logs();
  }

  static inline SoftHsm* hsm_ = nullptr;
  static inline ServerdProcess* server_ = nullptr;
};

TEST_F(AdminJsonTest, BodiesOfTheWrongShapeAreInvalidArgument) {
  ExpectRefused("/v1/bundle/BatchSetFederatedBundle", R"({"bundles":[1]})", "bundles[0]: expected an object");
  ExpectRefused("/v1/bundle/BatchSetFederatedBundle", R"({"bundles":[{"trust_domain":5,"pem":"x"}]})",
                "bundles[0].trust_domain: expected a string");
  ExpectRefused("/v1/bundle/BatchSetFederatedBundle", R"({"bundles":[{"trust_domain":"other.org","jwks":{}}]})",
                "bundles[0].jwks: expected a string");
  ExpectRefused("/v1/bundle/BatchSetFederatedBundle", R"({"bundles":[{"trust_domain":"other.org"}]})",
                "a bundle needs \"jwks\" or \"pem\"");
  ExpectRefused("/v1/bundle/BatchSetFederatedBundle", R"({"bundles":"x"})", "{\"bundles\"");
  ExpectRefused("/v1/bundle/BatchDeleteFederatedBundle", R"({"trust_domains":[1]})", "trust_domains[0]: expected a string");
  ExpectRefused("/v1/entry/ListEntries", R"({"filter":{"by_selectors":"x"}})", "filter.by_selectors: expected an object");
  ExpectRefused("/v1/entry/ListEntries", R"({"filter":{"by_selectors":{"selectors":"x"}}})", "filter.by_selectors.selectors");
  ExpectRefused("/v1/entry/ListEntries", R"({"filter":{"by_selectors":{"match":7}}})", "filter.by_selectors.match");
  ExpectRefused("/v1/entry/ListEntries", R"({"filter":{"by_spiffe_id":[1]}})", "filter.by_spiffe_id");
  ExpectRefused("/v1/entry/ListEntries", R"({"filter":3})", "filter: expected an object");
  ExpectRefused("/v1/entry/BatchDeleteEntry", R"({"ids":[{"id":1}]})", "ids[0]: expected a string");
  ExpectRefused("/v1/entry/GetEntry", R"({"id":["x"]})", "\"id\" is required");
  ExpectRefused("/v1/entry/BatchCreateEntry", R"({"entries":[[]]})", "entries[0]: expected an object");
  ExpectRefused("/v1/entry/BatchCreateEntry", R"({"entries":[{"x509_svid_ttl":"99999999999999999999"}]})",
                "entries[0].x509_svid_ttl: is larger than a 64-bit whole number holds");
  ExpectRefused("/v1/entry/BatchCreateEntry", R"({"entries":[{"jwt_svid_ttl":18446744073709551615}]})",
                "entries[0].jwt_svid_ttl: is larger than a 64-bit whole number holds");
  ExpectRefused("/v1/agent/CreateJoinToken", R"({"agent_id":{"path":1}})", "token.agent_id");
  // Bodies that methods registered outside the admin folder read (minting) are refused too.
  ExpectRefused("/v1/svid/MintJWTSVID", R"({"spiffe_id":5,"audience":["a"]})", "MintJWTSVID");
  ExpectRefused("/v1/svid/MintX509SVID", R"({"csr":"AA==","spiffe_id":[]})", "MintX509SVID");
  ExpectRefused("/v1/svid/MintX509SVID", R"({"csr":7})", "MintX509SVID.csr: expected a string");
  ExpectRefused("/v1/svid/MintX509SVID", R"({"csr":"AA==","spiffe_id":"spiffe://example.org/w","dns":[1]})",
                "MintX509SVID.dns: expected a list of strings");
  ExpectRefused("/v1/svid/MintX509SVID", R"({"spiffe_id":"spiffe://example.org/w"})", "MintX509SVID.csr: is required");
  ExpectRefused("/v1/svid/MintX509SVID", R"({"csr":"AA==","spiffe_id":"spiffe://example.org/w","ttl":"soon"})",
                "MintX509SVID.ttl: expected a whole number");
  ExpectRefused("/v1/svid/MintJWTSVID", R"({"spiffe_id":"spiffe://example.org/w","audience":"a"})",
                "MintJWTSVID.audience: expected a list of strings");
  ExpectRefused("/v1/svid/MintJWTSVID", R"({"spiffe_id":"spiffe://example.org/w","audience":[{"a":1}]})",
                "MintJWTSVID.audience: expected a list of strings");
  ExpectRefused("/v1/svid/MintJWTSVID", "[]", "MintJWTSVID: expected an object");
}

TEST_F(AdminJsonTest, JwtAudiencesAreBoundedInCountAndLength) {
  json many = {{"spiffe_id", "spiffe://example.org/w"}, {"audience", json::array()}};
  for (int i = 0; i < 33; ++i) many["audience"].push_back("aud" + std::to_string(i));
  ExpectRefused("/v1/svid/MintJWTSVID", many.dump(), "names 33 audiences; at most 32");
  ExpectRefused("/v1/svid/MintJWTSVID",
                json{{"spiffe_id", "spiffe://example.org/w"}, {"audience", {std::string(513, 'a')}}}.dump(),
                "audience of 513 bytes; at most 512");
  many["audience"].erase(many["audience"].size() - 1);
  auto minted = Call("/v1/svid/MintJWTSVID", many.dump());
  ASSERT_TRUE(minted.ok()) << minted.status().ToString();
}

TEST_F(AdminJsonTest, TtlsBeyondTheirBoundsAreRefusedNamingTheField) {
  const std::string entry = R"({"spiffe_id":"spiffe://example.org/web","parent_id":"spiffe://example.org/host",
                                "selectors":["unix:uid:1001"],)";
  auto created = Call("/v1/entry/BatchCreateEntry", R"({"entries":[)" + entry + R"("x509_svid_ttl":9223372036854775807},)" +
                                                        entry + R"("jwt_svid_ttl":31536001}]})");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  const json& results = (*created)["results"];
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0]["status"]["code"], static_cast<int>(Code::kInvalidArgument));
  EXPECT_NE(results[0]["status"]["message"].get<std::string>().find("x509_svid_ttl: must be at most 31536000 seconds"),
            std::string::npos) << results[0];
  EXPECT_NE(results[1]["status"]["message"].get<std::string>().find("jwt_svid_ttl: must be at most 31536000 seconds"),
            std::string::npos) << results[1];
  auto count = Call("/v1/entry/CountEntries", "{}");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ((*count)["count"], 0);

  ExpectRefused("/v1/agent/CreateJoinToken", R"({"ttl":9223372036854775807})", "token.ttl: must be a positive number");
  ExpectRefused("/v1/agent/CreateJoinToken", R"({"ttl":31536001})", "at most 31536000");
  ExpectRefused("/v1/svid/MintJWTSVID", R"({"spiffe_id":"spiffe://example.org/w","audience":["a"],"ttl":9223372036854775807})",
                "MintJWTSVID.ttl: must be a positive number of seconds, at most 31536000");
  ExpectRefused("/v1/svid/MintX509SVID", R"({"csr":"AA==","spiffe_id":"spiffe://example.org/w","ttl":-5})",
                "MintX509SVID.ttl: must be a positive number of seconds");
  auto token = Call("/v1/agent/CreateJoinToken", R"({"ttl":31536000})");
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_GT(std::stoll((*token)["expires_at"].get<std::string>()), NowUnixSeconds() + 31535000);
}

TEST_F(AdminJsonTest, AnX509SvidNeverOutlivesItsCa) {
  // A year, the longest TTL asked for; the CA lives a day.
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  ASSERT_TRUE(key);
  auto csr = MakeCsr(key.get());
  ASSERT_TRUE(csr.ok()) << csr.status().ToString();
  auto minted = Call("/v1/svid/MintX509SVID", json{{"csr", Base64Encode(*csr)},
                                                   {"spiffe_id", "spiffe://example.org/long"},
                                                   {"ttl", 31536000}}.dump());
  ASSERT_TRUE(minted.ok()) << minted.status().ToString();
  auto chain = CertsFromPem((*minted)["svid_pem"].get<std::string>());
  auto roots = CertsFromPem((*minted)["bundle_pem"].get<std::string>());
  ASSERT_TRUE(chain.ok() && roots.ok());
  const TimePoint leaf_expiry = CertNotAfter(chain->front().get());
  EXPECT_EQ(leaf_expiry, CertNotAfter(roots->front().get()));
  EXPECT_GT(leaf_expiry, std::chrono::system_clock::now() + std::chrono::hours(23));
}

}  // namespace
}  // namespace sigil::testing
