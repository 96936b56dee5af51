// The Workload API against the stock Python gRPC client (grpcio) on a real Unix socket, with
// callers told apart by the uid the kernel reports for their connection; raw response bytes
// are read with Sigil's own gRPC client.
#include "agentd/workload/workload_api.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "agentd/workload/workload.pb.h"
#include "core/base64url.h"
#include "transport/grpc_client.h"
#include "tests/agentd/python_workload_client.h"
#include "tests/agentd/workload_api_fixture.h"

namespace sigil::agentd::testing {
namespace {

using nlohmann::json;
using sigil::testing::ChildProcess;
using sigil::testing::ReadFile;
using sigil::testing::RunProcess;
using sigil::testing::WaitUntil;
using sigil::testing::WriteFile;

constexpr uid_t kNobody = 65534;

std::string Unbase64(const json& value) {
  auto bytes = Base64Decode(value.get<std::string>());
  return bytes.ok() ? std::string(bytes->begin(), bytes->end()) : std::string();
}

class WorkloadApiTest : public WorkloadApiFixture {
 protected:
  void SetUp() override {
    WorkloadApiFixture::SetUp();
    auto python = PythonWorkloadClient::Create(dir_ / "stubs");
    ASSERT_TRUE(python.ok()) << python.status().ToString();
    python_.emplace(std::move(*python));
  }

  std::vector<std::string> ClientArgv(const std::vector<std::string>& args, std::optional<uid_t> uid) const {
    return python_->Argv(socket_path_, args, uid);
  }

  json Client(const std::vector<std::string>& args, std::optional<uid_t> uid = std::nullopt) {
    return python_->Run(socket_path_, args, uid);
  }

  std::optional<PythonWorkloadClient> python_;
  MetricsRegistry metrics_;  // outlives the server, which TearDown stops
};

TEST_F(WorkloadApiTest, AWorkloadGetsItsX509SvidJwtSvidBundlesAndValidatesTokens) {
  auto entry = WorkloadEntry("e1", "/web", ::getuid());
  entry.federates_with = {"partner.test"};
  entry.hint = "internal";
  cache_.ApplyEntries({entry}, {}, 1, true);
  const std::string leaf = IssueSvid(entry);
  StartServer();

  struct stat socket_stat {};
  ASSERT_EQ(::stat(socket_path_.c_str(), &socket_stat), 0);
  EXPECT_EQ(socket_stat.st_mode & 0777, 0777u);

  // X509-SVID: the leaf, its key, the bundle, the federated bundle, and a chain openssl accepts.
  json x509 = Client({"x509", "1"});
  ASSERT_EQ(x509["messages"].size(), 1u) << x509.dump();
  const json& svid = x509["messages"][0]["svids"][0];
  EXPECT_EQ(svid["spiffe_id"], "spiffe://example.org/web");
  EXPECT_EQ(svid["hint"], "internal");
  EXPECT_EQ(Unbase64(svid["x509_svid"]), leaf);
  EXPECT_EQ(Unbase64(svid["bundle"]), CaDer());
  EXPECT_EQ(Unbase64(x509["messages"][0]["federated_bundles"]["spiffe://partner.test"]),
            PartnerCaDer());
  const std::string key_der = Unbase64(svid["x509_svid_key"]);
  const auto* key_bytes = reinterpret_cast<const unsigned char*>(key_der.data());
  EvpPkeyPtr key(d2i_AutoPrivateKey(nullptr, &key_bytes, static_cast<long>(key_der.size())));
  ASSERT_TRUE(key);
  const auto* leaf_bytes = reinterpret_cast<const unsigned char*>(leaf.data());
  X509Ptr leaf_cert(d2i_X509(nullptr, &leaf_bytes, static_cast<long>(leaf.size())));
  ASSERT_TRUE(leaf_cert);
  EXPECT_EQ(X509_check_private_key(leaf_cert.get(), key.get()), 1);
  WriteFile(dir_ / "svid.pem", DerToPem(Unbase64(svid["x509_svid"])));
  WriteFile(dir_ / "bundle.pem", DerToPem(Unbase64(svid["bundle"])));
  auto verify = RunProcess({"openssl", "verify", "-CAfile", (dir_ / "bundle.pem").string(),
                            (dir_ / "svid.pem").string()});
  ASSERT_TRUE(verify.ok());
  EXPECT_EQ(verify->exit_code, 0) << verify->out << verify->err;
  WriteFile(dir_ / "partner.pem", partner_ca_.CertPem());
  verify = RunProcess({"openssl", "verify", "-CAfile", (dir_ / "partner.pem").string(),
                       (dir_ / "svid.pem").string()});
  ASSERT_TRUE(verify.ok());
  EXPECT_NE(verify->exit_code, 0);

  // Bundles: own and federated, X.509 as DER, JWT as JWKS holding only the JWT keys.
  json x509_bundles = Client({"x509-bundles"});
  EXPECT_EQ(Unbase64(x509_bundles["bundles"]["spiffe://example.org"]), CaDer())
      << x509_bundles.dump();
  EXPECT_EQ(Unbase64(x509_bundles["bundles"]["spiffe://partner.test"]), PartnerCaDer());
  json jwt_bundles = Client({"jwt-bundles"});
  ASSERT_TRUE(jwt_bundles["bundles"].contains("spiffe://example.org")) << jwt_bundles.dump();
  EXPECT_TRUE(jwt_bundles["bundles"].contains("spiffe://partner.test"));
  auto own_jwks =
      TrustBundleFromJwks(*TrustDomain::Parse("example.org"),
                          jwt_bundles["bundles"]["spiffe://example.org"].get<std::string>());
  ASSERT_TRUE(own_jwks.ok()) << own_jwks.status().ToString();
  EXPECT_EQ(own_jwks->jwt.authorities.count(kJwtKeyId), 1u);
  EXPECT_TRUE(own_jwks->x509.authorities.empty());

  // JWT-SVID: minted once, then served from the cache.
  json jwt = Client({"jwt", "", "https://api.example.org"});
  ASSERT_EQ(jwt["svids"].size(), 1u) << jwt.dump();
  EXPECT_EQ(jwt["svids"][0]["spiffe_id"], "spiffe://example.org/web");
  EXPECT_EQ(jwt["svids"][0]["hint"], "internal");
  const std::string token = jwt["svids"][0]["svid"];
  auto checked = ValidateJwtSvid(token, OwnBundle().jwt, "https://api.example.org");
  ASSERT_TRUE(checked.ok()) << checked.status().ToString();
  EXPECT_EQ(
      Client({"jwt", "spiffe://example.org/web", "https://api.example.org"})["svids"][0]["svid"],
      token);
  EXPECT_EQ(mints_.load(), 1);
  EXPECT_EQ(Client({"jwt", "", "https://other.example.org"})["svids"].size(), 1u);
  EXPECT_EQ(mints_.load(), 2);

  json no_audience = Client({"jwt", ""});
  EXPECT_EQ(no_audience["code"], "INVALID_ARGUMENT");
  json not_mine = Client({"jwt", "spiffe://example.org/db", "a"});
  EXPECT_EQ(not_mine["code"], "PERMISSION_DENIED");

  // ValidateJWTSVID: SPIFFE ID and claims; wrong audience and tampering are InvalidArgument.
  json valid = Client({"validate", "https://api.example.org", token});
  EXPECT_EQ(valid["spiffe_id"], "spiffe://example.org/web") << valid.dump();
  EXPECT_EQ(valid["claims"]["sub"], "spiffe://example.org/web");
  EXPECT_TRUE(valid["claims"].contains("exp"));
  json wrong_audience = Client({"validate", "https://elsewhere.example.org", token});
  EXPECT_EQ(wrong_audience["code"], "INVALID_ARGUMENT");
  std::string tampered = token;
  tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(Client({"validate", "https://api.example.org", tampered})["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(Client({"validate", "", token})["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(Client({"validate", "https://api.example.org", ""})["code"], "INVALID_ARGUMENT");
}

TEST_F(WorkloadApiTest, EveryMethodRefusesACallWithoutTheSecurityHeader) {
  cache_.ApplyEntries({WorkloadEntry("e1", "/web", ::getuid())}, {}, 1, true);
  IssueSvid(*cache_.snapshot()->entries->at("e1").entry);
  StartServer(WorkloadApiOptions{.metrics = &metrics_});
  json out = Client({"no-header"});
  ASSERT_EQ(out.size(), 5u) << out.dump();
  for (const auto& [method, result] : out.items()) {
    EXPECT_EQ(result["code"], "INVALID_ARGUMENT") << method;
    EXPECT_EQ(result["details"], "security header missing from request") << method;
  }
  EXPECT_EQ(mints_.load(), 0);
  const std::string rendered = metrics_.Render();
  EXPECT_NE(rendered.find("sigil_agent_workload_api_calls_total{method=\"FetchX509SVID\",status=\"InvalidArgument\"} 1"),
            std::string::npos)
      << rendered;
  EXPECT_NE(rendered.find("sigil_agent_workload_api_calls_total{method=\"ValidateJWTSVID\",status=\"InvalidArgument\"} 1"),
            std::string::npos);
  // SPIRE's names for the same calls.
  EXPECT_NE(rendered.find("spire_agent_rpc_workload_api_fetch_x509svid{status=\"InvalidArgument\"} 1\n"),
            std::string::npos);
  EXPECT_NE(rendered.find("spire_agent_rpc_workload_api_validate_jwtsvid_elapsed_time_count{status=\"InvalidArgument\"} 1\n"),
            std::string::npos);
}

TEST_F(WorkloadApiTest, CallersAreToldApartByUid) {
  // A socket file left by an agent that died does not stop the next one.
  std::filesystem::create_directories(dir_ / "public");
  const int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{.sun_family = AF_UNIX};
  std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", socket_path_.c_str());
  ASSERT_EQ(::bind(stale, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ::close(stale);
  ASSERT_TRUE(std::filesystem::is_socket(socket_path_));
  auto root_entry = WorkloadEntry("root", "/root-service", ::getuid());
  cache_.ApplyEntries({root_entry}, {}, 1, true);
  IssueSvid(root_entry);
  StartServer();

  // No entry for this uid: PermissionDenied on every identity call.
  json denied = Client({"x509", "1"}, kNobody);
  EXPECT_EQ(denied["code"], "PERMISSION_DENIED") << denied.dump();
  EXPECT_EQ(denied["details"], "no identity issued");
  EXPECT_EQ(Client({"jwt", "", "a"}, kNobody)["code"], "PERMISSION_DENIED");
  EXPECT_EQ(Client({"x509-bundles"}, kNobody)["code"], "PERMISSION_DENIED");
  EXPECT_EQ(mints_.load(), 0);

  auto nobody_entry = WorkloadEntry("nobody", "/nobody-service", kNobody);
  cache_.ApplyEntries({nobody_entry}, {}, 2, false);
  const std::string nobody_leaf = IssueSvid(nobody_entry);
  json nobody = Client({"x509", "1"}, kNobody);
  ASSERT_EQ(nobody["messages"].size(), 1u) << nobody.dump();
  ASSERT_EQ(nobody["messages"][0]["svids"].size(), 1u);
  EXPECT_EQ(nobody["messages"][0]["svids"][0]["spiffe_id"], "spiffe://example.org/nobody-service");
  EXPECT_EQ(Unbase64(nobody["messages"][0]["svids"][0]["x509_svid"]), nobody_leaf);
  json root = Client({"x509", "1"});
  ASSERT_EQ(root["messages"].size(), 1u) << root.dump();
  ASSERT_EQ(root["messages"][0]["svids"].size(), 1u);
  EXPECT_EQ(root["messages"][0]["svids"][0]["spiffe_id"], "spiffe://example.org/root-service");
  EXPECT_EQ(Client({"jwt", "", "a"}, kNobody)["svids"][0]["spiffe_id"],
            "spiffe://example.org/nobody-service");
}

TEST_F(WorkloadApiTest, AWatcherIsPushedEveryChangeAndLosesTheStreamWithItsLastEntry) {
  auto entry = WorkloadEntry("e1", "/web", ::getuid());
  cache_.ApplyEntries({entry}, {}, 1, true);  // no SVID yet: the stream must wait, not refuse
  StartServer();
  auto watcher = ChildProcess::Start(ClientArgv({"watch"}, std::nullopt), dir_.path());
  ASSERT_TRUE(watcher.ok());
  auto lines = [&] {
    std::vector<json> out;
    std::istringstream text(watcher->stdout_text());
    for (std::string line; std::getline(text, line);)
      out.push_back(json::parse(line, nullptr, false));
    return out;
  };
  ASSERT_TRUE(WaitUntil([&] { return OpenStreams() == 1; })) << watcher->stderr_text();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(lines().empty()) << watcher->stdout_text();

  const std::string first_leaf = IssueSvid(entry);
  ASSERT_TRUE(WaitUntil([&] { return lines().size() == 1; }, std::chrono::seconds(1)))
      << watcher->stdout_text();
  EXPECT_EQ(Unbase64(lines()[0]["svids"][0]["x509_svid"]), first_leaf);

  // Rotation: a new SVID for the same entry is pushed.
  const std::string rotated_leaf = IssueSvid(entry);
  ASSERT_TRUE(WaitUntil([&] { return lines().size() == 2; }, std::chrono::seconds(1)))
      << watcher->stdout_text();
  EXPECT_EQ(Unbase64(lines()[1]["svids"][0]["x509_svid"]), rotated_leaf);

  // A change that does not touch this caller pushes nothing.
  cache_.ApplyEntries({WorkloadEntry("other", "/other", kNobody)}, {}, 2, false);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(lines().size(), 2u);

  // A new entry for the caller, once signed, adds an identity.
  auto second = WorkloadEntry("e2", "/web-admin", ::getuid());
  cache_.ApplyEntries({second}, {}, 3, false);
  IssueSvid(second);
  ASSERT_TRUE(WaitUntil([&] { return lines().size() == 3; }, std::chrono::seconds(1)))
      << watcher->stdout_text();
  ASSERT_EQ(lines()[2]["svids"].size(), 2u);
  EXPECT_EQ(lines()[2]["svids"][0]["spiffe_id"], "spiffe://example.org/web");
  EXPECT_EQ(lines()[2]["svids"][1]["spiffe_id"], "spiffe://example.org/web-admin");

  // A new bundle reaches the stream too.
  TrustBundle bundle = OwnBundle();
  sigil::testing::TestCa next_ca("example.org");
  bundle.x509.Add(next_ca.cert());
  cache_.SetBundle(std::move(bundle));
  ASSERT_TRUE(WaitUntil([&] { return lines().size() == 4; }, std::chrono::seconds(1)))
      << watcher->stdout_text();
  EXPECT_GT(Unbase64(lines()[3]["svids"][0]["bundle"]).size(), CaDer().size());

  // One entry removed: its SVID is redacted from the next message.
  cache_.ApplyEntries({}, {"e2"}, 4, false);
  ASSERT_TRUE(WaitUntil([&] { return lines().size() == 5; }, std::chrono::seconds(1)))
      << watcher->stdout_text();
  EXPECT_EQ(lines()[4]["svids"].size(), 1u);

  // The last one removed: every SVID is redacted, which the standard spells PermissionDenied.
  cache_.ApplyEntries({}, {"e1"}, 5, false);
  ASSERT_TRUE(WaitUntil([&] { return lines().size() == 6; }, std::chrono::seconds(1)))
      << watcher->stdout_text();
  EXPECT_EQ(lines()[5]["code"], "PERMISSION_DENIED");
  EXPECT_EQ(watcher->Wait(std::chrono::seconds(5)), 0);
  EXPECT_EQ(OpenStreams(), 0u);
}

// The response is written one SVID at a time rather than built as one message; it must be the
// very bytes protobuf's own deterministic encoding of that message gives.
TEST_F(WorkloadApiTest, AnX509ResponseOfManySvidsIsProtobufsOwnEncodingWithHintsUnique) {
  std::vector<RegistrationEntry> entries;
  for (int i = 0; i < 40; ++i) {
    auto entry = WorkloadEntry("e" + std::to_string(i), "/svc" + std::to_string(100 + i), ::getuid());
    entry.hint = i % 3 == 0 ? "" : (i % 3 == 1 ? "shared" : "h" + std::to_string(i));
    if (i == 7) entry.federates_with = {"partner.test"};
    entries.push_back(entry);
  }
  cache_.ApplyEntries(entries, {}, 1, true);
  std::vector<std::string> leaves;
  for (const auto& entry : entries) leaves.push_back(IssueSvid(entry));
  StartServer();

  std::mutex mu;
  std::condition_variable arrived;
  std::optional<std::string> raw;
  std::unique_ptr<transport::GrpcChannel> channel;
  std::shared_ptr<transport::GrpcClientCall> call;
  loop_.loop().Invoke([&] {
    channel = std::make_unique<transport::GrpcChannel>(&loop_.loop(), transport::Endpoint::Unix(socket_path_));
    transport::GrpcCallOptions options;
    options.metadata = {{"workload.spiffe.io", "true"}};
    call = channel->CallServerStreaming(
        "/SpiffeWorkloadAPI/FetchX509SVID", "", options,
        [&](std::string message) {
          std::lock_guard lock(mu);
          if (!raw) raw = std::move(message);
          arrived.notify_all();
        },
        [](Status) {});
  });
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(arrived.wait_for(lock, std::chrono::seconds(10), [&] { return raw.has_value(); }));
  }
  loop_.loop().Invoke([&] {
    call->Cancel();
    channel.reset();
  });

  X509SVIDResponse response;
  ASSERT_TRUE(response.ParseFromString(*raw));
  ASSERT_EQ(response.svids_size(), 40);
  std::set<std::string> hints_seen;
  for (int i = 0; i < 40; ++i) {
    const auto& svid = response.svids(i);
    // Ordered by SPIFFE ID, which these paths sort in entry order.
    EXPECT_EQ(svid.spiffe_id(), entries[i].spiffe_id);
    EXPECT_EQ(svid.x509_svid(), leaves[i]);
    EXPECT_EQ(svid.bundle(), CaDer());
    EXPECT_FALSE(svid.x509_svid_key().empty());
    const std::string expected_hint = entries[i].hint.empty() || hints_seen.count(entries[i].hint) ? "" : entries[i].hint;
    if (!entries[i].hint.empty()) hints_seen.insert(entries[i].hint);
    EXPECT_EQ(svid.hint(), expected_hint) << i;
  }
  EXPECT_EQ(response.svids(1).hint(), "shared");
  EXPECT_EQ(response.svids(4).hint(), "");
  ASSERT_EQ(response.federated_bundles().size(), 1u);
  EXPECT_EQ(response.federated_bundles().at("spiffe://partner.test"), PartnerCaDer());

  std::string canonical;
  {
    google::protobuf::io::StringOutputStream stream(&canonical);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    response.SerializeToCodedStream(&coded);
  }
  EXPECT_EQ(*raw, canonical);
}

TEST_F(WorkloadApiTest, JwtSvidsComeFromTheCacheWhileTheServerCannotSign) {
  auto web = WorkloadEntry("e1", "/web", ::getuid());
  auto admin = WorkloadEntry("e2", "/admin", ::getuid());
  cache_.ApplyEntries({web, admin}, {}, 1, true);
  std::atomic<bool> server_reachable{true};
  WorkloadApiOptions options;
  options.mint_jwt = [&](const RegistrationEntry& entry, std::vector<std::string> audience,
                         std::function<void(Result<WorkloadJwtSvid>)> done) {
    ++mints_;
    if (!server_reachable) return done(UnavailableError("serverd is unreachable"));
    done(MintJwt(entry, audience));
  };
  StartServer(std::move(options));

  // Both identities, minted together, in the API's order.
  json both = Client({"jwt", "", "aud-1"});
  ASSERT_EQ(both["svids"].size(), 2u) << both.dump();
  EXPECT_EQ(both["svids"][0]["spiffe_id"], "spiffe://example.org/admin");
  EXPECT_EQ(both["svids"][1]["spiffe_id"], "spiffe://example.org/web");
  EXPECT_EQ(mints_.load(), 2);

  server_reachable = false;
  json cached = Client({"jwt", "spiffe://example.org/web", "aud-1"});
  ASSERT_EQ(cached["svids"].size(), 1u) << cached.dump();
  EXPECT_EQ(cached["svids"][0]["svid"], both["svids"][1]["svid"]);
  EXPECT_EQ(mints_.load(), 2);

  json failed = Client({"jwt", "", "aud-2"});
  EXPECT_EQ(failed["code"], "UNAVAILABLE") << failed.dump();
  EXPECT_NE(failed["details"].get<std::string>().find("serverd is unreachable"), std::string::npos);
}

TEST_F(WorkloadApiTest, BundleStreamsArePushedWhenABundleChanges) {
  auto entry = WorkloadEntry("e1", "/web", ::getuid());
  entry.federates_with = {"partner.test"};
  cache_.ApplyEntries({entry}, {}, 1, true);
  StartServer();
  std::vector<ChildProcess> watchers;
  for (const char* kind : {"x509-bundles", "jwt-bundles"}) {
    std::filesystem::create_directory(dir_ / kind);
    auto watcher = ChildProcess::Start(ClientArgv({"watch", kind}, std::nullopt), dir_ / kind);
    ASSERT_TRUE(watcher.ok());
    watchers.push_back(std::move(*watcher));
  }
  auto lines = [&](size_t i) {
    std::vector<json> out;
    std::istringstream text(watchers[i].stdout_text());
    for (std::string line; std::getline(text, line);)
      out.push_back(json::parse(line, nullptr, false));
    return out;
  };
  // No SVID is needed for bundles: the entry alone entitles the caller.
  ASSERT_TRUE(WaitUntil([&] { return lines(0).size() == 1 && lines(1).size() == 1; }))
      << watchers[0].stderr_text() << watchers[1].stderr_text();
  EXPECT_EQ(Unbase64(lines(0)[0]["bundles"]["spiffe://partner.test"]), PartnerCaDer());
  EXPECT_EQ(lines(1)[0]["bundles"]["spiffe://example.org"].get<std::string>().find("jwt-key-2"),
            std::string::npos);

  // The same bundles again change nothing; a new JWT key reaches both streams.
  cache_.SetBundles(OwnBundle(), {{"partner.test", PartnerBundle()}});
  TrustBundle next = OwnBundle();
  auto key = hw::GenerateSoftKey(KeyType::kEcP256);
  ASSERT_TRUE(key.ok());
  next.jwt.authorities.emplace("jwt-key-2", JwtAuthority(std::move(*key)));
  cache_.SetBundles(std::move(next), {{"partner.test", PartnerBundle()}});
  ASSERT_TRUE(WaitUntil([&] { return lines(1).size() == 2; }, std::chrono::seconds(1)))
      << watchers[1].stdout_text();
  EXPECT_NE(lines(1)[1]["bundles"]["spiffe://example.org"].get<std::string>().find("jwt-key-2"),
            std::string::npos);
  // The X.509 bundles did not change: that stream stays quiet.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(lines(0).size(), 1u);

  // Federation dropped from the entry: the partner bundle is redacted.
  entry.federates_with.clear();
  entry.revision = 2;
  cache_.ApplyEntries({entry}, {}, 2, false);
  ASSERT_TRUE(WaitUntil([&] { return lines(0).size() == 2; }, std::chrono::seconds(1)))
      << watchers[0].stdout_text();
  EXPECT_FALSE(lines(0)[1]["bundles"].contains("spiffe://partner.test"));
  EXPECT_TRUE(lines(0)[1]["bundles"].contains("spiffe://example.org"));
  for (auto& watcher : watchers) watcher.Stop();
}

TEST_F(WorkloadApiTest, StreamsEndWhenTheirClientGoesAway) {
  cache_.ApplyEntries({WorkloadEntry("e1", "/web", ::getuid())}, {}, 1, true);
  IssueSvid(*cache_.snapshot()->entries->at("e1").entry);
  StartServer();
  auto watcher = ChildProcess::Start(ClientArgv({"watch"}, std::nullopt), dir_.path());
  ASSERT_TRUE(watcher.ok());
  ASSERT_TRUE(WaitUntil([&] { return !watcher->stdout_text().empty(); })) << watcher->stderr_text();
  EXPECT_EQ(OpenStreams(), 1u);
  watcher->Stop(9);
  EXPECT_TRUE(WaitUntil([&] { return OpenStreams() == 0; }));
  // Later changes find no stream to write to.
  IssueSvid(*cache_.snapshot()->entries->at("e1").entry);
  EXPECT_EQ(Client({"x509", "1"})["messages"].size(), 1u);
}

}  // namespace
}  // namespace sigil::agentd::testing
