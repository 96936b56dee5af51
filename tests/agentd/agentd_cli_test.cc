// The `agentd` executable's Workload API commands against a real Workload API server.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <sstream>

#include "agentd/cli/cli.h"
#include <nlohmann/json.hpp>

#include "core/base64url.h"
#include "core/jwt_svid.h"
#include "tests/agentd/workload_api_fixture.h"

namespace sigil::agentd::testing {
namespace {

using sigil::testing::ChildProcess;
using sigil::testing::LinesWith;
using sigil::testing::ProcessOptions;
using sigil::testing::ProcessOutput;
using sigil::testing::ReadFile;
using sigil::testing::RunProcess;
using sigil::testing::WaitUntil;
using sigil::testing::WriteFile;

std::string AgentdPath() {
  const char* path = std::getenv("SIGIL_AGENTD");
  return path != nullptr ? path : "agentd";
}

// The keys of a JSON object, in order.
std::vector<std::string> Keys(const nlohmann::json& object) {
  std::vector<std::string> keys;
  for (const auto& item : object.items()) keys.push_back(item.key());
  return keys;
}

std::string Unbase64(const nlohmann::json& value) {
  auto bytes = Base64Decode(value.is_string() ? value.get<std::string>() : "");
  return bytes.ok() ? std::string(bytes->begin(), bytes->end()) : "";
}

std::string GoTimeOf(TimePoint when) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[64];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
  return text;
}

class AgentdCliTest : public WorkloadApiFixture {
 protected:
  ProcessOutput Agentd(std::vector<std::string> args, ProcessOptions options = {}) {
    args.insert(args.begin(), AgentdPath());
    auto run = RunProcess(args, options, std::chrono::seconds(20));
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    return run.ok() ? *run : ProcessOutput{};
  }

  RegistrationEntry AddWebEntry() {
    auto entry = WorkloadEntry("e1", "/web", ::getuid());
    entry.federates_with = {"spiffe://partner.test"};
    cache_.ApplyEntries({entry}, {}, 1, true);
    return entry;
  }
};

TEST_F(AgentdCliTest, FetchX509PrintsTheSvidAndWritesFilesOpensslAccepts) {
  auto entry = AddWebEntry();
  IssueSvid(entry);
  StartServer();
  const auto svid = cache_.snapshot()->entries->at("e1").svid;

  auto fetched = Agentd({"api", "fetch", "x509", "-socketPath", socket_path_});
  ASSERT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_EQ(fetched.out.rfind("Received 1 svid after ", 0), 0u) << fetched.out;
  EXPECT_NE(fetched.out.find("SPIFFE ID:\t\tspiffe://example.org/web\n"), std::string::npos)
      << fetched.out;
  EXPECT_NE(fetched.out.find("SVID Valid After:\t" + GoTimeOf(svid->not_before) + "\n"),
            std::string::npos)
      << fetched.out;
  EXPECT_NE(fetched.out.find("SVID Valid Until:\t" + GoTimeOf(svid->not_after) + "\n"),
            std::string::npos);
  EXPECT_NE(fetched.out.find("CA #1 Valid After:\t" + GoTimeOf(CertNotBefore(ca_.cert())) + "\n"),
            std::string::npos);
  EXPECT_NE(fetched.out.find("CA #1 Valid Until:\t"), std::string::npos);

  const auto out_dir = dir_ / "out";
  std::filesystem::create_directory(out_dir);
  auto written =
      Agentd({"api", "fetch", "x509", "-socketPath", socket_path_, "-write", out_dir.string()});
  ASSERT_EQ(written.exit_code, 0) << written.err;
  EXPECT_NE(written.out.find("Writing SVID #0 to file " + (out_dir / "svid.0.pem").string() + "."),
            std::string::npos)
      << written.out;
  struct stat key_stat {};
  ASSERT_EQ(::stat((out_dir / "svid.0.key").c_str(), &key_stat), 0);
  EXPECT_EQ(key_stat.st_mode & 0777, 0600u);
  EXPECT_EQ(ReadFile(out_dir / "bundle.0.pem"), ca_.CertPem());
  EXPECT_EQ(ReadFile(out_dir / "federated_bundle.0.0.pem"), partner_ca_.CertPem());

  auto verify = RunProcess({"openssl", "verify", "-CAfile", (out_dir / "bundle.0.pem").string(),
                            (out_dir / "svid.0.pem").string()});
  ASSERT_TRUE(verify.ok());
  EXPECT_EQ(verify->exit_code, 0) << verify->out << verify->err;
  // The key is the certificate's: both public halves print the same.
  auto key_public =
      RunProcess({"openssl", "pkey", "-in", (out_dir / "svid.0.key").string(), "-pubout"});
  auto cert_public = RunProcess(
      {"openssl", "x509", "-in", (out_dir / "svid.0.pem").string(), "-pubkey", "-noout"});
  ASSERT_TRUE(key_public.ok() && cert_public.ok());
  EXPECT_EQ(key_public->exit_code, 0) << key_public->err;
  EXPECT_FALSE(key_public->out.empty());
  EXPECT_EQ(key_public->out, cert_public->out);

  // -silent prints nothing and still writes.
  std::filesystem::remove(out_dir / "svid.0.pem");
  auto silent = Agentd(
      {"api", "fetch", "x509", "-socketPath", socket_path_, "-write", out_dir.string(), "-silent"});
  EXPECT_EQ(silent.exit_code, 0) << silent.err;
  EXPECT_EQ(silent.out, "");
  EXPECT_TRUE(std::filesystem::exists(out_dir / "svid.0.pem"));
}

TEST_F(AgentdCliTest, FetchJwtThenValidateItAndATamperedCopy) {
  IssueSvid(AddWebEntry());
  StartServer();

  auto fetched = Agentd(
      {"api", "fetch", "jwt", "-audience", "https://api.example.org", "-socketPath", socket_path_});
  ASSERT_EQ(fetched.exit_code, 0) << fetched.err;
  const std::string prefix = "token(spiffe://example.org/web):\n\t";
  ASSERT_EQ(fetched.out.rfind(prefix, 0), 0u) << fetched.out;
  const std::string token =
      fetched.out.substr(prefix.size(), fetched.out.find('\n', prefix.size()) - prefix.size());
  EXPECT_EQ(std::count(token.begin(), token.end(), '.'), 2) << token;
  EXPECT_NE(fetched.out.find("bundle(spiffe://example.org):\n\t{"), std::string::npos)
      << fetched.out;
  EXPECT_NE(fetched.out.find(kJwtKeyId), std::string::npos);

  auto valid = Agentd({"api", "validate", "jwt", "-audience", "https://api.example.org", "-svid",
                       token, "-socketPath", socket_path_});
  ASSERT_EQ(valid.exit_code, 0) << valid.err;
  EXPECT_EQ(
      valid.out.rfind("SVID is valid.\nSPIFFE ID : spiffe://example.org/web\nClaims    : {", 0), 0u)
      << valid.out;
  EXPECT_NE(valid.out.find("\"sub\":\"spiffe://example.org/web\""), std::string::npos) << valid.out;

  std::string tampered = token;
  const size_t payload = tampered.find('.') + 3;
  tampered[payload] = tampered[payload] == 'A' ? 'B' : 'A';
  auto invalid = Agentd({"api", "validate", "jwt", "-audience", "https://api.example.org", "-svid",
                         tampered, "-socketPath", socket_path_});
  EXPECT_EQ(invalid.exit_code, 1);
  EXPECT_EQ(invalid.err.rfind("SVID is not valid: ", 0), 0u) << invalid.err;
  EXPECT_EQ(invalid.out, "");

  auto other_audience =
      Agentd({"api", "validate", "jwt", "-audience", "https://elsewhere.example.org", "-svid",
              token, "-socketPath", socket_path_});
  EXPECT_EQ(other_audience.exit_code, 1);
  EXPECT_NE(other_audience.err.find("audience"), std::string::npos) << other_audience.err;

  // A comma-separated -audience names several audiences, as SPIRE's agent reads it.
  auto two = Agentd({"api", "fetch", "jwt", "-audience", "https://a.example.org,https://b.example.org",
                     "-socketPath", socket_path_});
  ASSERT_EQ(two.exit_code, 0) << two.err;
  const std::string two_token = two.out.substr(prefix.size(), two.out.find('\n', prefix.size()) - prefix.size());
  auto claims_json = UnverifiedJwtClaims(two_token);
  ASSERT_TRUE(claims_json.ok()) << two_token;
  auto claims = nlohmann::json::parse(*claims_json, nullptr, false);
  EXPECT_EQ(claims["aud"], nlohmann::json({"https://a.example.org", "https://b.example.org"})) << claims.dump();
}

TEST_F(AgentdCliTest, HealthcheckFollowsTheReadyPredicate) {
  std::atomic<bool> ready{false};
  StartServer(WorkloadApiOptions{.ready = [&] { return ready.load(); }});

  auto unhealthy = Agentd({"healthcheck", "-socketPath", socket_path_});
  EXPECT_EQ(unhealthy.exit_code, 1);
  EXPECT_EQ(unhealthy.err.rfind("Agent is unhealthy: ", 0), 0u) << unhealthy.err;
  EXPECT_NE(unhealthy.err.find("NOT_SERVING"), std::string::npos) << unhealthy.err;
  auto shallow = Agentd({"healthcheck", "-shallow", "-socketPath", socket_path_});
  EXPECT_EQ(shallow.exit_code, 0) << shallow.err;

  ready = true;
  auto healthy = Agentd({"healthcheck", "-verbose", "-socketPath", socket_path_});
  EXPECT_EQ(healthy.exit_code, 0) << healthy.err;
  EXPECT_EQ(healthy.out, "Checking agent health...\nAgent is healthy.\n");

  auto nobody_there = Agentd({"healthcheck", "-socketPath", (dir_ / "missing.sock").string()});
  EXPECT_EQ(nobody_there.exit_code, 1);
  EXPECT_EQ(nobody_there.err, "Agent is unhealthy: unable to determine health\n");

  // Without an entry for this process there is no identity to fetch.
  auto denied = Agentd({"api", "fetch", "x509", "-socketPath", socket_path_});
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_NE(denied.err.find("PERMISSION_DENIED: no identity issued"), std::string::npos)
      << denied.err;
}

TEST_F(AgentdCliTest, SpiffeEndpointSocketIsHonouredAndSocketPathWins) {
  IssueSvid(AddWebEntry());
  StartServer();
  auto uri = Agentd({"api", "fetch", "x509"},
                    {.env = {{"SPIFFE_ENDPOINT_SOCKET", "unix://" + socket_path_}}});
  EXPECT_EQ(uri.exit_code, 0) << uri.err;
  EXPECT_NE(uri.out.find("spiffe://example.org/web"), std::string::npos);
  auto bare =
      Agentd({"healthcheck"}, {.env = {{"SPIFFE_ENDPOINT_SOCKET", "unix:" + socket_path_}}});
  EXPECT_EQ(bare.exit_code, 0) << bare.err;
  auto flag_wins = Agentd({"healthcheck", "-socketPath", socket_path_},
                          {.env = {{"SPIFFE_ENDPOINT_SOCKET", "unix:///nowhere/api.sock"}}});
  EXPECT_EQ(flag_wins.exit_code, 0) << flag_wins.err;
  auto env_used = Agentd({"healthcheck", "-verbose"},
                         {.env = {{"SPIFFE_ENDPOINT_SOCKET", "unix:///nowhere/api.sock"}}});
  EXPECT_EQ(env_used.exit_code, 1);
  EXPECT_NE(env_used.err.find("/nowhere/api.sock"), std::string::npos) << env_used.err;
  auto not_unix = Agentd({"healthcheck"}, {.env = {{"SPIFFE_ENDPOINT_SOCKET", "/just/a/path"}}});
  EXPECT_EQ(not_unix.exit_code, 1);
  EXPECT_NE(not_unix.err.find("SPIFFE_ENDPOINT_SOCKET"), std::string::npos) << not_unix.err;
}

TEST_F(AgentdCliTest, WatchPrintsEachUpdateAsItArrives) {
  auto entry = AddWebEntry();
  IssueSvid(entry);
  StartServer();
  auto watcher =
      ChildProcess::Start({AgentdPath(), "api", "watch", "-socketPath", socket_path_}, dir_.path());
  ASSERT_TRUE(watcher.ok());
  ASSERT_TRUE(WaitUntil([&] {
    return LinesWith(watcher->stdout_text(), "Received 1 svid after") == 1;
  })) << watcher->stderr_text();
  IssueSvid(entry);
  EXPECT_TRUE(WaitUntil([&] { return LinesWith(watcher->stdout_text(), "Received 1 svid after") == 2; },
                        std::chrono::seconds(2)))
      << watcher->stdout_text();
  EXPECT_EQ(LinesWith(watcher->stdout_text(), "SPIFFE ID:\t\tspiffe://example.org/web"), 2u);
  EXPECT_TRUE(watcher->running());
  watcher->Stop();
  EXPECT_TRUE(WaitUntil([&] { return OpenStreams() == 0; }));
}

TEST_F(AgentdCliTest, BadUsageSaysWhatIsWrongAndFails) {
  auto no_audience = Agentd({"api", "fetch", "jwt", "-socketPath", socket_path_});
  EXPECT_EQ(no_audience.exit_code, 1);
  EXPECT_NE(no_audience.err.find("audience"), std::string::npos) << no_audience.err;
  auto bad_timeout = Agentd({"api", "fetch", "x509", "-timeout", "soon"});
  EXPECT_EQ(bad_timeout.exit_code, 1);
  EXPECT_NE(bad_timeout.err.find("-timeout"), std::string::npos) << bad_timeout.err;
  auto unknown = Agentd({"api", "fetch", "x510"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("unknown command 'agentd api fetch x510': expected x509, jwt"),
            std::string::npos)
      << unknown.err;
  auto unknown_flag = Agentd({"healthcheck", "-socket", "x"});
  EXPECT_EQ(unknown_flag.exit_code, 1);
  EXPECT_NE(unknown_flag.err.find("--socket"), std::string::npos) << unknown_flag.err;
  auto nothing = Agentd({});
  EXPECT_NE(nothing.exit_code, 0);
  EXPECT_FALSE(nothing.err.empty());
}

TEST_F(AgentdCliTest, FetchWithoutAKindFetchesX509AsSpireAgentDoes) {
  IssueSvid(AddWebEntry());
  StartServer();
  auto fetched = Agentd({"api", "fetch", "-socketPath", socket_path_});
  ASSERT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_EQ(fetched.out.rfind("Received 1 svid after ", 0), 0u) << fetched.out;
  EXPECT_NE(fetched.out.find("SPIFFE ID:\t\tspiffe://example.org/web\n"), std::string::npos) << fetched.out;
  // The federated bundle under the SVID, as spire-agent prints it.
  EXPECT_NE(fetched.out.find("[spiffe://partner.test] CA #1 Valid After:\t" + GoTimeOf(CertNotBefore(partner_ca_.cert()))),
            std::string::npos)
      << fetched.out;
  auto help = Agentd({"api", "fetch", "-h"});
  EXPECT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("\n  x509 "), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("\n  jwt "), std::string::npos) << help.out;
  auto listed = Agentd({"-h"});
  EXPECT_NE(listed.out.find("\n  run "), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("\n  validate "), std::string::npos) << listed.out;
}

TEST_F(AgentdCliTest, OutputJsonPrintsTheWorkloadApiAnswersWithSpiresFieldNames) {
  IssueSvid(AddWebEntry());
  StartServer();
  auto x509 = Agentd({"api", "fetch", "x509", "-output", "json", "-socketPath", socket_path_});
  ASSERT_EQ(x509.exit_code, 0) << x509.err;
  EXPECT_EQ(std::count(x509.out.begin(), x509.out.end(), '\n'), 1) << x509.out;
  const auto answer = nlohmann::json::parse(x509.out, nullptr, false);
  ASSERT_TRUE(answer.is_object()) << x509.out;
  EXPECT_EQ(Keys(answer), (std::vector<std::string>{"crl", "federated_bundles", "svids"})) << x509.out;
  ASSERT_EQ(answer["svids"].size(), 1u);
  const auto& svid = answer["svids"][0];
  EXPECT_EQ(Keys(svid), (std::vector<std::string>{"bundle", "hint", "spiffe_id", "x509_svid", "x509_svid_key"}));
  EXPECT_EQ(svid["spiffe_id"], "spiffe://example.org/web");
  EXPECT_EQ(svid["hint"], "");
  EXPECT_EQ(Unbase64(svid["bundle"]), CaDer());
  EXPECT_EQ(Unbase64(answer["federated_bundles"]["spiffe://partner.test"]), PartnerCaDer());
  const std::string key_der = Unbase64(svid["x509_svid_key"]);
  const auto* key_bytes = reinterpret_cast<const unsigned char*>(key_der.data());
  EvpPkeyPtr key(d2i_AutoPrivateKey(nullptr, &key_bytes, static_cast<long>(key_der.size())));
  EXPECT_TRUE(key != nullptr) << "x509_svid_key is no PKCS#8 key";
  EXPECT_EQ(answer["crl"], nlohmann::json::array());

  // fetch jwt prints the JWTSVIDResponse and the JWTBundlesResponse, as one array.
  for (const char* flag : {"-output", "-format"}) {
    auto jwt = Agentd({"api", "fetch", "jwt", "-audience", "https://api.example.org", flag, "json", "-socketPath",
                       socket_path_});
    ASSERT_EQ(jwt.exit_code, 0) << jwt.err;
    const auto both = nlohmann::json::parse(jwt.out, nullptr, false);
    ASSERT_TRUE(both.is_array() && both.size() == 2) << jwt.out;
    EXPECT_EQ(Keys(both[0]), std::vector<std::string>{"svids"});
    ASSERT_EQ(both[0]["svids"].size(), 1u) << jwt.out;
    EXPECT_EQ(Keys(both[0]["svids"][0]), (std::vector<std::string>{"hint", "spiffe_id", "svid"}));
    EXPECT_EQ(Keys(both[1]), std::vector<std::string>{"bundles"});
    const auto jwks = nlohmann::json::parse(Unbase64(both[1]["bundles"]["spiffe://example.org"]), nullptr, false);
    ASSERT_TRUE(jwks.is_object()) << jwt.out;
    EXPECT_EQ(jwks["keys"][0]["kid"], kJwtKeyId);

    const std::string token = both[0]["svids"][0]["svid"];
    auto valid = Agentd({"api", "validate", "jwt", "-audience", "https://api.example.org", "-svid", token, "-output",
                         "JSON", "-socketPath", socket_path_});
    ASSERT_EQ(valid.exit_code, 0) << valid.err;
    const auto validated = nlohmann::json::parse(valid.out, nullptr, false);
    EXPECT_EQ(Keys(validated), (std::vector<std::string>{"claims", "spiffe_id"})) << valid.out;
    EXPECT_EQ(validated["spiffe_id"], "spiffe://example.org/web");
    EXPECT_EQ(validated["claims"]["sub"], "spiffe://example.org/web");
    EXPECT_EQ(validated["claims"]["aud"], "https://api.example.org");
  }

  auto write = Agentd({"api", "fetch", "-output", "json", "-write", dir_.path().string(), "-socketPath", socket_path_});
  EXPECT_EQ(write.exit_code, 1);
  EXPECT_EQ(write.err, "Error: -write is only available for the pretty output format\n");
  EXPECT_EQ(write.out, "");
  auto xml = Agentd({"api", "fetch", "-output", "xml", "-socketPath", socket_path_});
  EXPECT_EQ(xml.exit_code, 1);
  EXPECT_NE(xml.err.find("-output: unknown format option: \"xml\""), std::string::npos) << xml.err;
  auto pretty = Agentd({"api", "fetch", "-output", "pretty", "-socketPath", socket_path_});
  EXPECT_EQ(pretty.out.rfind("Received 1 svid after ", 0), 0u) << pretty.out;
}

TEST(AgentdCliDurations, GoDurationsParseAndPrintAsGoDoes) {
  EXPECT_EQ(*ParseGoDuration("5s"), std::chrono::seconds(5));
  EXPECT_EQ(*ParseGoDuration("1m30s"), std::chrono::seconds(90));
  EXPECT_EQ(*ParseGoDuration("250ms"), std::chrono::milliseconds(250));
  EXPECT_EQ(*ParseGoDuration("1.5h"), std::chrono::minutes(90));
  EXPECT_FALSE(ParseGoDuration("5").ok());
  EXPECT_FALSE(ParseGoDuration("").ok());
  EXPECT_FALSE(ParseGoDuration("s").ok());
  EXPECT_EQ(FormatGoDuration(std::chrono::nanoseconds(8'853'700)), "8.8537ms");
  EXPECT_EQ(FormatGoDuration(std::chrono::milliseconds(1500)), "1.5s");
  EXPECT_EQ(FormatGoDuration(std::chrono::seconds(123)), "2m3s");
  EXPECT_EQ(FormatGoDuration(std::chrono::hours(1)), "1h0m0s");
  EXPECT_EQ(FormatGoDuration(std::chrono::nanoseconds(1'200)), "1.2µs");
  EXPECT_EQ(FormatGoDuration(std::chrono::nanoseconds(0)), "0s");
}

}  // namespace
}  // namespace sigil::agentd::testing
