// The `agentd` executable's Workload API commands against a real Workload API server.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <sstream>

#include "agentd/cli/cli.h"
#include <nlohmann/json.hpp>

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
