// Federation between real serverd processes: one serves its bundle endpoint (https_spiffe with
// its own SVID, or https_web with a certificate from files), another federates with it and keeps
// its bundle current, through a CA rotation, without a restart; and what a federating server
// refuses, keeping the bundle it holds: an endpoint presenting another SPIFFE ID, one that cannot
// be reached, one that answers something that is not a bundle, and a bundle whose sequence goes
// backwards.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/process.h"
#include "tests/support/serverd_process.h"
#include "tests/support/softhsm_suite.h"
#include "transport/event_loop.h"
#include "transport/http_get_server.h"
#include "transport/serving_certificate.h"

namespace sigil::testing {
namespace {

using nlohmann::json;

class FederationEndpointTest : public SoftHsmSuite<> {
 protected:
  void TearDown() override {
    for (auto& server : servers_) {
      server->Stop();
      EXPECT_EQ(server->logs().find("Sanitizer"), std::string::npos) << server->logs();
      if (HasFailure()) std::cerr << "serverd logs:\n" << server->logs();
    }
  }

  ServerdProcess& Start(ServerdOptions options) {
    auto server = ServerdProcess::Create(*hsm_, "federation-" + std::to_string(++tokens_), options);
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    Status started = (*server)->Start();
    EXPECT_TRUE(started.ok()) << started.ToString();
    servers_.push_back(std::move(*server));
    return *servers_.back();
  }

  // The bundle endpoint section of a server whose endpoint listens on `port`.
  static std::string EndpointYaml(int port, const std::string& profile = "https_spiffe") {
    return "federation:\n  bundle_endpoint:\n    address: 127.0.0.1\n    port: " + std::to_string(port) +
           "\n    refresh_hint: 1s\n    profile: " + profile + "\n";
  }

  // A federates_with entry for `trust_domain`'s endpoint at `url`.
  static std::string Relationship(const std::string& trust_domain, const std::string& url, const std::string& profile) {
    return "    " + trust_domain + ":\n      bundle_endpoint_url: " + url + "\n      bundle_endpoint_profile: " + profile + "\n";
  }
  static std::string HttpsSpiffe(const std::string& id) { return "{https_spiffe: {endpoint_spiffe_id: \"" + id + "\"}}"; }

  // This trust domain's own bundle, as `bundle show -format spiffe` prints it.
  static json OwnBundle(ServerdProcess& server) {
    ProcessOutput shown = server.MustCli({"bundle", "show", "-format", "spiffe"});
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    return json::parse(shown.out, nullptr, false);
  }

  // The bundle of `trust_domain` that `server` holds as a federated bundle; null when none.
  static json Held(ServerdProcess& server, const std::string& trust_domain) {
    ProcessOutput listed = server.MustCli({"bundle", "list", "-id", "spiffe://" + trust_domain, "-output", "json"});
    json bundles = json::parse(listed.out, nullptr, false);
    if (bundles.is_discarded() || bundles["bundles"].empty()) return json();
    return json::parse(bundles["bundles"][0].value("jwks", ""), nullptr, false);
  }

  static size_t X509Authorities(const json& jwks) {
    size_t count = 0;
    if (!jwks.is_object()) return 0;
    for (const json& key : jwks["keys"]) count += key.value("use", "") == "x509-svid";
    return count;
  }

  // Gives `server` the first bundle of `trust_domain` by hand, as an https_spiffe relationship
  // asks.
  void Bootstrap(ServerdProcess& server, const std::string& trust_domain, const json& jwks) {
    const auto path = work_.path() / ("bootstrap-" + trust_domain + ".json");
    WriteFile(path, jwks.dump());
    ProcessOutput set = server.MustCli({"bundle", "set", "-id", "spiffe://" + trust_domain, "-path", path.string(), "-format", "spiffe"});
    ASSERT_EQ(set.exit_code, 0) << set.err;
  }

  // A certificate for 127.0.0.1 and its key, self-signed: the web PKI root of a test.
  std::pair<std::string, std::string> LoopbackCertificate() {
    const std::string cert = (work_.path() / "web.crt").string();
    const std::string key = (work_.path() / "web.key").string();
    auto made = RunProcess({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                            "subjectAltName=IP:127.0.0.1"});
    EXPECT_TRUE(made.ok() && made->exit_code == 0) << (made.ok() ? made->err : made.status().ToString());
    return {cert, key};
  }

  static inline int tokens_ = 0;
  TempDir work_{"sigil-federation"};
  std::vector<std::unique_ptr<ServerdProcess>> servers_;
};

TEST_F(FederationEndpointTest, HttpsSpiffeKeepsThePartnersBundleCurrentThroughItsCaRotation) {
  // A 40-second CA: the next one is published at 20 s, and must reach the partner without a
  // restart of either server. (At 20 s, a slow start under the sanitizers let the successor be
  // published before the partner's first fetch.)
  const int port = FreeLoopbackPort();
  ServerdProcess& home = Start({.trust_domain = "example.org", .ca_ttl = "40s", .default_x509_svid_ttl = "5s",
                                .extra_yaml = "  default_jwt_svid_ttl: 5s\n", .top_level_yaml = EndpointYaml(port)});
  ServerdProcess& partner = Start({.trust_domain = "partner.test",
                                   .top_level_yaml = "federation:\n  federates_with:\n" +
                                                     Relationship("example.org", "https://127.0.0.1:" + std::to_string(port),
                                                                  HttpsSpiffe("spiffe://example.org/spire/server"))});
  const json first = OwnBundle(home);
  ASSERT_EQ(X509Authorities(first), 1u) << first.dump();
  Bootstrap(partner, "example.org", first);

  // The partner fetches the endpoint's document, with its refresh hint and sequence.
  json held;
  WaitUntil([&] { return (held = Held(partner, "example.org")).value("spiffe_refresh_hint", 0) == 1; },
            std::chrono::seconds(20));
  EXPECT_EQ(held.value("spiffe_refresh_hint", 0), 1) << held.dump();
  EXPECT_EQ(held.value("spiffe_sequence", 0), first.value("spiffe_sequence", 0)) << held.dump();

  // The home CA's successor is published; within the refresh hint the partner holds it too.
  WaitUntil([&] { return X509Authorities(Held(partner, "example.org")) == 2; }, std::chrono::seconds(45));
  held = Held(partner, "example.org");
  EXPECT_EQ(X509Authorities(held), 2u) << held.dump();
  EXPECT_GT(held.value("spiffe_sequence", 0), first.value("spiffe_sequence", 0)) << held.dump();
  EXPECT_EQ(X509Authorities(OwnBundle(home)), 2u);
  EXPECT_NE(partner.logs().find("federated bundle refreshed"), std::string::npos);
}

TEST_F(FederationEndpointTest, HttpsWebWithACertificateFromFiles) {
  const auto [cert, key] = LoopbackCertificate();
  const int port = FreeLoopbackPort();
  ServerdProcess& home = Start(
      {.trust_domain = "example.org",
       .top_level_yaml = EndpointYaml(port, "{https_web: {serving_cert_file: {cert_file_path: " + cert +
                                                ", key_file_path: " + key + "}}}")});
  const std::string url = "https://127.0.0.1:" + std::to_string(port);
  // No bundle by hand: the web PKI (here the test's own root, through SSL_CERT_FILE) vouches
  // for the endpoint.
  ServerdProcess& partner = Start({.trust_domain = "partner.test",
                                   .top_level_yaml = "federation:\n  federates_with:\n" + Relationship("example.org", url, "https_web"),
                                   .env = {{"SSL_CERT_FILE", cert}}});
  json held;
  WaitUntil([&] { return X509Authorities(held = Held(partner, "example.org")) == 1; }, std::chrono::seconds(20));
  EXPECT_EQ(held["keys"], OwnBundle(home)["keys"]) << held.dump();

  // A server that does not trust that root refuses the endpoint and holds nothing.
  ServerdProcess& sceptic = Start({.trust_domain = "sceptic.test",
                                   .top_level_yaml = "federation:\n  federates_with:\n" + Relationship("example.org", url, "https_web")});
  WaitUntil([&] { return sceptic.logs().find("fetching the federated bundle of example.org failed") != std::string::npos; },
            std::chrono::seconds(10));
  EXPECT_NE(sceptic.logs().find("certificate was refused"), std::string::npos) << sceptic.logs();
  EXPECT_TRUE(Held(sceptic, "example.org").is_null());
}

TEST_F(FederationEndpointTest, RefusedEndpointsKeepTheBundleHeldAndAreLoggedOncePerInterval) {
  const int port = FreeLoopbackPort();
  ServerdProcess& home = Start({.trust_domain = "example.org", .top_level_yaml = EndpointYaml(port)});

  // An HTTPS server on loopback that answers 200 with something that is not a bundle.
  const auto [cert, key] = LoopbackCertificate();
  transport::ServingCertificate certificate({cert, key}, "test certificate");
  ASSERT_TRUE(certificate.Load().ok());
  transport::LoopThread loop;
  loop.Start();
  std::unique_ptr<transport::HttpGetServer> garbage;
  const int garbage_port = FreeLoopbackPort();
  ASSERT_TRUE(loop.loop()
                  .Invoke([&] {
                    garbage = std::make_unique<transport::HttpGetServer>(&loop.loop(),
                                                                         transport::HttpGetServerOptions{.tls = certificate.source()});
                    garbage->Route("/", [] { return transport::HttpGetResponse{200, "application/json", "{\"bundle\": false}"}; });
                    return garbage->Listen("127.0.0.1", garbage_port);
                  })
                  .ok());

  const int closed_port = FreeLoopbackPort();
  ServerdProcess& partner = Start(
      {.trust_domain = "partner.test",
       .top_level_yaml = "federation:\n  federates_with:\n" +
                         Relationship("example.org", "https://127.0.0.1:" + std::to_string(port),
                                      HttpsSpiffe("spiffe://example.org/not-the-server")) +
                         Relationship("unreachable.test", "https://127.0.0.1:" + std::to_string(closed_port), "https_web") +
                         Relationship("garbage.test", "https://127.0.0.1:" + std::to_string(garbage_port), "https_web"),
       .env = {{"SSL_CERT_FILE", cert}}});
  const json first = OwnBundle(home);
  Bootstrap(partner, "example.org", first);

  // Failures back off (1, 2, 4 s...) and each trust domain's is logged at once, then once a
  // minute, or when it changes: several attempts in these seconds, one line for each error. The
  // home endpoint failed for want of a bundle until the bootstrap, then for its SPIFFE ID.
  std::this_thread::sleep_for(std::chrono::seconds(8));
  const std::string logs = partner.logs();
  EXPECT_EQ(LinesWith(logs, "is not spiffe://example.org/not-the-server"), 1u) << logs;
  EXPECT_NE(logs.find("peer spiffe://example.org/spire/server is not"), std::string::npos) << logs;
  EXPECT_EQ(LinesWith(logs, "fetching the federated bundle of unreachable.test failed"), 1u) << logs;
  EXPECT_NE(logs.find("connecting to 127.0.0.1:" + std::to_string(closed_port)), std::string::npos) << logs;
  EXPECT_EQ(LinesWith(logs, "fetching the federated bundle of garbage.test failed"), 1u) << logs;
  EXPECT_NE(logs.find("is not a bundle of garbage.test"), std::string::npos) << logs;
  // The bundle held is the one set by hand; nothing was stored for the others.
  EXPECT_EQ(Held(partner, "example.org").value("spiffe_sequence", -1), first.value("spiffe_sequence", 0));
  EXPECT_TRUE(Held(partner, "unreachable.test").is_null());
  EXPECT_TRUE(Held(partner, "garbage.test").is_null());
  loop.loop().Invoke([&] { garbage.reset(); });
}

TEST_F(FederationEndpointTest, ABundleWhoseSequenceGoesBackwardsIsRefused) {
  const int port = FreeLoopbackPort();
  ServerdProcess& home = Start({.trust_domain = "example.org", .top_level_yaml = EndpointYaml(port)});
  ServerdProcess& partner = Start({.trust_domain = "partner.test",
                                   .top_level_yaml = "federation:\n  federates_with:\n" +
                                                     Relationship("example.org", "https://127.0.0.1:" + std::to_string(port),
                                                                  HttpsSpiffe("spiffe://example.org/spire/server"))});
  // The partner holds the home bundle with a sequence far ahead of the endpoint's: what the
  // endpoint serves now would roll it back.
  json ahead = OwnBundle(home);
  ahead["spiffe_sequence"] = 1000000;
  Bootstrap(partner, "example.org", ahead);
  WaitUntil([&] { return partner.logs().find("a rollback is refused") != std::string::npos; }, std::chrono::seconds(15));
  EXPECT_NE(partner.logs().find("lower than the 1000000 held: a rollback is refused"), std::string::npos) << partner.logs();
  EXPECT_EQ(Held(partner, "example.org").value("spiffe_sequence", 0), 1000000);
}

// `serverd federation …` as SPIRE's: a relationship made, changed and removed on a running
// server, each change acted on without a restart; the config file's relationships listed but
// changed only there; bad input refused by field, storing nothing.
TEST_F(FederationEndpointTest, FederationCommandsManageRelationshipsOnARunningServer) {
  const int port = FreeLoopbackPort();
  const std::string url = "https://127.0.0.1:" + std::to_string(port);
  ServerdProcess& home = Start({.trust_domain = "example.org", .top_level_yaml = EndpointYaml(port)});
  ServerdProcess& partner = Start(
      {.trust_domain = "partner.test",
       .top_level_yaml = "federation:\n  federates_with:\n" +
                         Relationship("static.test", "https://127.0.0.1:" + std::to_string(FreeLoopbackPort()), "https_web")});
  const auto bundle_file = work_.path() / "example.org.json";
  WriteFile(bundle_file, OwnBundle(home).dump());

  // Created with the first bundle of the domain, which the https_spiffe endpoint is checked
  // against; the server fetches the endpoint's own document at once.
  ProcessOutput created = partner.MustCli(
      {"federation", "create", "-trustDomain", "example.org", "-bundleEndpointURL", url, "-bundleEndpointProfile",
       "https_spiffe", "-endpointSpiffeID", "spiffe://example.org/spire/server", "-trustDomainBundlePath",
       bundle_file.string(), "-trustDomainBundleFormat", "spiffe"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_EQ(created.out,
            "\nTrust domain              : example.org\nBundle endpoint URL       : " + url +
                "\nBundle endpoint profile   : https_spiffe\nEndpoint SPIFFE ID        : spiffe://example.org/spire/server\n");
  WaitUntil([&] { return Held(partner, "example.org").value("spiffe_refresh_hint", 0) == 1; }, std::chrono::seconds(15));
  EXPECT_EQ(Held(partner, "example.org").value("spiffe_refresh_hint", 0), 1) << partner.logs();

  ProcessOutput listed = partner.MustCli({"federation", "list"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out.rfind("Found 2 federation relationships\n", 0), 0u) << listed.out;
  EXPECT_NE(listed.out.find("Trust domain              : static.test\n"), std::string::npos) << listed.out;
  ProcessOutput shown = partner.MustCli({"federation", "show", "-trustDomain", "example.org", "-output", "json"});
  EXPECT_EQ(json::parse(shown.out, nullptr, false)["https_spiffe"].value("endpoint_spiffe_id", ""),
            "spiffe://example.org/spire/server")
      << shown.out << shown.err;

  // Refused, each naming why, and nothing changed.
  ProcessOutput again = partner.MustCli({"federation", "create", "-trustDomain", "example.org", "-bundleEndpointURL", url,
                                         "-bundleEndpointProfile", "https_web"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("Failed to create the following federation relationship (code: AlreadyExists"), std::string::npos)
      << again.err;
  ProcessOutput configured = partner.MustCli({"federation", "delete", "-id", "static.test"});
  EXPECT_NE(configured.exit_code, 0);
  EXPECT_NE(configured.err.find("the config file's federation.federates_with names static.test"), std::string::npos)
      << configured.err;
  ProcessOutput plain_http = partner.MustCli({"federation", "create", "-trustDomain", "other.test", "-bundleEndpointURL",
                                              "http://127.0.0.1:1", "-bundleEndpointProfile", "https_web"});
  EXPECT_NE(plain_http.err.find("bundle_endpoint_url: 'http://127.0.0.1:1' is not an https URL"), std::string::npos)
      << plain_http.err;
  ProcessOutput no_id = partner.MustCli({"federation", "create", "-trustDomain", "other.test", "-bundleEndpointURL", url,
                                         "-bundleEndpointProfile", "https_spiffe"});
  EXPECT_NE(no_id.err.find("endpoint_spiffe_id: is required with https_spiffe"), std::string::npos) << no_id.err;
  const auto data_file = work_.path() / "relationships.json";
  WriteFile(data_file, "{\"federationRelationships\": [{\"trustDomain\": \"web.test\", \"bundleEndpointURL\": "
                       "\"https://127.0.0.1:1\", \"bundleEndpointProfile\": \"https_web\"}]}");
  ProcessOutput mixed = partner.MustCli({"federation", "create", "-data", data_file.string(), "-trustDomain", "x.test"});
  EXPECT_NE(mixed.err.find("cannot use other flags to specify relationship fields when 'data' flag is set"), std::string::npos)
      << mixed.err;
  EXPECT_EQ(partner.MustCli({"federation", "list"}).out.rfind("Found 2 federation relationships\n", 0), 0u);

  // A -data file as SPIRE's CLI reads it.
  ProcessOutput from_file = partner.MustCli({"federation", "create", "-data", data_file.string()});
  EXPECT_EQ(from_file.exit_code, 0) << from_file.err;
  EXPECT_NE(from_file.out.find("Bundle endpoint profile   : https_web"), std::string::npos) << from_file.out;

  // Refreshed on demand; an update to another endpoint SPIFFE ID takes effect at once: the
  // next fetch is refused and the bundle held stays.
  ProcessOutput refreshed = partner.MustCli({"federation", "refresh", "-id", "spiffe://example.org"});
  EXPECT_EQ(refreshed.exit_code, 0) << refreshed.err;
  EXPECT_EQ(refreshed.out, "Bundle refreshed\n");
  ProcessOutput unknown = partner.MustCli({"federation", "refresh", "-id", "nowhere.test"});
  EXPECT_NE(unknown.err.find("there is no federation relationship with trust domain \"nowhere.test\""), std::string::npos)
      << unknown.err;
  ProcessOutput updated = partner.MustCli({"federation", "update", "-trustDomain", "example.org", "-bundleEndpointURL", url,
                                           "-bundleEndpointProfile", "https_spiffe", "-endpointSpiffeID",
                                           "spiffe://example.org/not-the-server"});
  EXPECT_EQ(updated.exit_code, 0) << updated.err;
  ProcessOutput refused = partner.MustCli({"federation", "refresh", "-id", "example.org"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("is not spiffe://example.org/not-the-server"), std::string::npos) << refused.err;
  EXPECT_EQ(Held(partner, "example.org").value("spiffe_refresh_hint", 0), 1);

  // The bundle's history: the one given at create, then the endpoint's.
  ProcessOutput history = partner.MustCli({"bundle", "history", "-id", "example.org", "-output", "json"});
  const json versions = json::parse(history.out, nullptr, false)["versions"];
  ASSERT_EQ(versions.size(), 2u) << history.out << history.err;
  EXPECT_EQ(json::parse(versions[0].value("jwks", ""), nullptr, false).value("spiffe_refresh_hint", 0), 1);

  // Deleted: no longer fetched; the bundle stays until `bundle delete`.
  ProcessOutput deleted = partner.MustCli({"federation", "delete", "-id", "example.org"});
  EXPECT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(deleted.out, "federation relationship deleted.\n");
  EXPECT_EQ(partner.MustCli({"federation", "list"}).out.rfind("Found 2 federation relationships\n", 0), 0u);
  EXPECT_NE(partner.MustCli({"federation", "refresh", "-id", "example.org"}).exit_code, 0);
  EXPECT_FALSE(Held(partner, "example.org").is_null());
}

}  // namespace
}  // namespace sigil::testing
