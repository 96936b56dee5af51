// Refusals a peer can repeat without end, against a real `serverd run` (CA key in a SoftHSM2
// token): a SignCsrBatch naming one item many times is refused whole, before any per-item work,
// and a refusal a peer repeats is one log line per interval with a count, not one per request.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "agentd/sync/agent_svid.h"
#include "agentd/sync/server_client.h"
#include "core/csr.h"
#include "core/wire/convert.h"
#include "hw/soft_key_store.h"
#include "tests/support/serverd_process.h"
#include "transport/http2_client.h"

namespace sigil::testing {
namespace {

using agentd::ServerClient;
using nlohmann::json;

const TrustDomain kTd = *TrustDomain::Parse("example.org");
constexpr char kRefusalLine[] = "agent API call refused";

// The one log line holding `text`; empty unless there is exactly one.
std::string OnlyLineWith(const std::string& logs, const std::string& text) {
  if (LinesWith(logs, text) != 1) return "";
  const size_t at = logs.find(text);
  const size_t newline_before = logs.rfind('\n', at);
  const size_t begin = newline_before == std::string::npos ? 0 : newline_before + 1;
  const size_t end = logs.find('\n', at);
  return logs.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

// A SignCsrBatch body whose item vector references one CsrItem `times` times, as flatbuffers
// allows: a few bytes per item however many there are.
std::string AliasedBatch(const std::string& entry_id, const Bytes& csr, size_t times) {
  flatbuffers::FlatBufferBuilder builder(times * sizeof(flatbuffers::uoffset_t) + csr.size() + 1024);
  auto item = wire::CreateCsrItem(builder, builder.CreateString(entry_id), builder.CreateVector(csr));
  std::vector<flatbuffers::Offset<wire::CsrItem>> items(times, item);
  const Bytes message = wire::FinishMessage(builder, wire::CreateCsrBatchRequest(builder, builder.CreateVector(items)));
  return std::string(message.begin(), message.end());
}

class AgentApiRefusalsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto hsm = SoftHsm::Create();
    ASSERT_TRUE(hsm.ok()) << hsm.status().ToString();
    hsm_ = std::move(*hsm);
    auto server = ServerdProcess::Create(*hsm_, "refusals", Options());
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    ASSERT_TRUE(server_->Start().ok()) << server_->logs();
    auto pem = Cli({"bundle", "show"});
    auto bundle = X509BundleFromPem(kTd, pem.out);
    ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
    bundle_ = std::move(*bundle);

    const std::string value = NewJoinToken();
    ASSERT_FALSE(value.empty());
    loop_.Start();
    client_ = std::make_unique<ServerClient>(
        ServerClient::Options{.endpoint = {.host = "127.0.0.1", .port = server_->agent_port()}, .trust_domain = kTd},
        &loop_.loop());
    ASSERT_TRUE(client_->SetBundle(bundle_).ok());
    auto key = hw::GenerateSoftKey(KeyType::kEcP256);
    ASSERT_TRUE(key.ok());
    auto svid = client_->AttestWithJoinToken(value, *MakeCsr(key->get()));
    ASSERT_TRUE(svid.ok()) << svid.status().ToString();
    agent_id_ = svid->agent_id.str();
    auto credentials = agentd::CredentialsOf(svid->chain_der, key->get());
    ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
    credentials_ = std::move(*credentials);
    ASSERT_TRUE(client_->SetAgentCredentials(credentials_).ok());
  }

  virtual ServerdOptions Options() { return {}; }

  void TearDown() override {
    if (server_) server_->Stop();
    if (HasFailure() && server_) std::cerr << "serverd logs:\n" << server_->logs().substr(0, 20'000);
  }

  ProcessOutput Cli(std::vector<std::string> args) { return server_->MustCli(std::move(args)); }

  std::string CreateEntry(const std::string& path, const std::string& parent_id) {
    auto out = Cli({"entry", "create", "-spiffeID", "spiffe://example.org" + path, "-parentID", parent_id,
                    "-selector", "unix:uid:1000", "-output", "json"});
    EXPECT_EQ(out.exit_code, 0) << out.err;
    return json::parse(out.out, nullptr, false)["results"][0]["entry"].value("id", "");
  }

  // `body` sent to SignCsrBatch over mutual TLS with the agent's SVID, as the agent would.
  Result<std::string> SignCsrBatchRaw(std::string body) { return PostAsAgent(wire::kSignCsrBatchPath, std::move(body)); }

  // `body` sent to the agent API method at `path` over mutual TLS with the agent's SVID.
  Result<std::string> PostAsAgent(const char* path, std::string body) {
    transport::TlsOptions tls;
    tls.credentials = credentials_;
    tls.insecure_skip_verify = true;
    SIGIL_ASSIGN_OR_RETURN(auto context, transport::TlsContext::CreateClient(tls));
    SIGIL_ASSIGN_OR_RETURN(auto response,
                           transport::Http2RequestBlocking({.host = "127.0.0.1", .port = server_->agent_port()}, "POST",
                                                           path,
                                                           {{"content-type", wire::kContentType}}, std::move(body),
                                                           context, std::chrono::seconds(60)));
    if (response.status != 200) return InternalError("HTTP " + std::to_string(response.status));
    return std::move(response.body);
  }

  static std::span<const uint8_t> Span(const std::string& bytes) {
    return {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
  }

  // A fresh join token's attestation, as a new agent would make it.
  Result<agentd::AgentSvidAnswer> AttestNewAgent(const std::string& join_token) {
    SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, hw::GenerateSoftKey(KeyType::kEcP256));
    SIGIL_ASSIGN_OR_RETURN(Bytes csr, MakeCsr(key.get()));
    ServerClient client(
        ServerClient::Options{.endpoint = {.host = "127.0.0.1", .port = server_->agent_port()}, .trust_domain = kTd},
        &loop_.loop());
    SIGIL_RETURN_IF_ERROR(client.SetBundle(bundle_));
    return client.AttestWithJoinToken(join_token, csr);
  }

  std::string NewJoinToken() { return server_->NewJoinToken(); }

  std::unique_ptr<SoftHsm> hsm_;
  std::unique_ptr<ServerdProcess> server_;
  X509Bundle bundle_{kTd};
  transport::LoopThread loop_;
  std::unique_ptr<ServerClient> client_;
  std::shared_ptr<const transport::TlsCredentials> credentials_;
  std::string agent_id_;
};

TEST_F(AgentApiRefusalsTest, AnAliasedBatchOverTheCapIsRefusedWholeWithOneLogLine) {
  // Not the agent's: every item the server looked at would be refused, and logged, alone.
  const std::string theirs = CreateEntry("/someone-else", "spiffe://example.org/spire/agent/join_token/other");
  auto key = hw::GenerateSoftKey(KeyType::kEcP256);
  ASSERT_TRUE(key.ok());
  const Bytes csr = *MakeCsr(key->get());

  for (int attempt = 0; attempt < 3; ++attempt) {
    auto answer = SignCsrBatchRaw(AliasedBatch(theirs, csr, 100'000));
    ASSERT_TRUE(answer.ok()) << answer.status().ToString();
    auto outcome = wire::VerifiedMessage<wire::Outcome>(Span(*answer));
    ASSERT_TRUE(outcome.ok()) << "answered item by item, not refused whole: " << outcome.status().ToString();
    const Status refused = wire::StatusFromOutcome(*outcome);
    EXPECT_EQ(refused.code(), Code::kInvalidArgument) << refused.ToString();
    EXPECT_NE(refused.message().find("100000 items; at most 1000"), std::string::npos) << refused.ToString();
    EXPECT_NE(refused.message().find("max_csr_batch_items"), std::string::npos) << refused.ToString();
  }
  const std::string logs = server_->logs();
  EXPECT_EQ(LinesWith(logs, "CSR refused"), 0u);
  const std::string line = OnlyLineWith(logs, kRefusalLine);
  EXPECT_NE(line.find("100000 items"), std::string::npos) << "want one refusal line for three requests:\n" << logs;
  EXPECT_NE(line.find("failures=1"), std::string::npos) << line;

  // At the cap, aliases are items like any other: each is answered, and signed.
  const std::string mine = CreateEntry("/mine", agent_id_);
  auto answer = SignCsrBatchRaw(AliasedBatch(mine, csr, 1000));
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  auto response = wire::VerifiedMessage<wire::CsrBatchResponse>(Span(*answer));
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  ASSERT_NE((*response)->results(), nullptr);
  ASSERT_EQ((*response)->results()->size(), 1000u);
  for (const auto* result : *(*response)->results()) {
    ASSERT_TRUE(wire::StatusFromOutcome(result->outcome()).ok()) << wire::StatusFromOutcome(result->outcome()).ToString();
  }
}

// A MintJwtSvid body naming `audience` `times` times, one string aliased.
std::string AliasedJwtRequest(const std::string& entry_id, const std::string& audience, size_t times) {
  flatbuffers::FlatBufferBuilder builder(times * sizeof(flatbuffers::uoffset_t) + audience.size() + 1024);
  auto one = builder.CreateString(audience);
  std::vector<flatbuffers::Offset<flatbuffers::String>> audiences(times, one);
  const Bytes message = wire::FinishMessage(
      builder, wire::CreateJwtSvidRequest(builder, builder.CreateString(entry_id), builder.CreateVector(audiences)));
  return std::string(message.begin(), message.end());
}

TEST_F(AgentApiRefusalsTest, AJwtRequestOverTheAudienceBoundsIsRefusedBeforeAnyIsCopiedOrSigned) {
  const std::string mine = CreateEntry("/mine", agent_id_);
  const auto refusal = [&](const std::string& body) {
    auto answer = PostAsAgent(wire::kMintJwtSvidPath, body);
    if (!answer.ok()) return answer.status();
    auto outcome = wire::VerifiedMessage<wire::Outcome>(Span(*answer));
    return outcome.ok() ? wire::StatusFromOutcome(*outcome) : InternalError("not refused whole");
  };
  // Refused by the request reader, which counts before copying: the signer would refuse too,
  // but only after 100,000 strings were copied and a job was queued.
  const Status aliased = refusal(AliasedJwtRequest(mine, "payments", 100'000));
  EXPECT_EQ(aliased.code(), Code::kInvalidArgument) << aliased.ToString();
  EXPECT_NE(aliased.message().find("request names 100000 audiences; at most 32"), std::string::npos) << aliased.ToString();
  const Status long_one = refusal(AliasedJwtRequest(mine, std::string(513, 'a'), 1));
  EXPECT_EQ(long_one.code(), Code::kInvalidArgument) << long_one.ToString();

  // Within the bounds, the same entry is signed a token.
  auto answer = PostAsAgent(wire::kMintJwtSvidPath, AliasedJwtRequest(mine, "payments", 32));
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  auto response = wire::VerifiedMessage<wire::JwtSvidResponse>(Span(*answer));
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_TRUE(wire::StatusFromOutcome((*response)->outcome()).ok()) << wire::StatusFromOutcome((*response)->outcome()).ToString();
  ASSERT_NE((*response)->token(), nullptr);
  EXPECT_FALSE((*response)->token()->str().empty());
}

TEST_F(AgentApiRefusalsTest, AnEvictedAgentRetryingIsOneLineAndItsCountNotALineEach) {
  ASSERT_EQ(Cli({"agent", "evict", "-spiffeID", agent_id_}).exit_code, 0);
  for (int i = 0; i < 50; ++i) {
    auto refused = client_->SyncEntries(0, std::chrono::milliseconds(0));
    ASSERT_FALSE(refused.ok());
    ASSERT_EQ(refused.status().code(), Code::kUnauthenticated) << refused.status().ToString();
  }
  const std::string line = OnlyLineWith(server_->logs(), kRefusalLine);
  EXPECT_NE(line.find(agent_id_), std::string::npos) << "want one line for 50 refusals:\n" << server_->logs();
  EXPECT_NE(line.find("failures=1"), std::string::npos) << line;

  // The 49 within the interval are counted, and the count is logged at the latest on the way down.
  server_->Stop();
  const std::string logs = server_->logs();
  EXPECT_EQ(LinesWith(logs, kRefusalLine), 2u) << logs;
  EXPECT_EQ(LinesWith(logs, "failures=49"), 1u) << logs;
}

// The same agent API with rates low enough to reach: one attestation per second per address
// (three at once), one SVID per second per agent (1000 at once, the batch cap).
class AgentApiRateLimitTest : public AgentApiRefusalsTest {
 protected:
  ServerdOptions Options() override {
    return {.top_level_yaml = "agent_api_limits:\n"
                              "  attestations_per_second_per_ip: 1\n"
                              "  attestation_burst_per_ip: 3\n"
                              "  svids_per_second_per_agent: 1\n"
                              "  svid_burst_per_agent: 1000\n"};
  }
};

TEST_F(AgentApiRateLimitTest, AttestationsFromOneAddressBeyondTheBurstWaitForTheRate) {
  // SetUp attested once; the rest of the burst goes, then the address is told to back off.
  // The tokens are made first: a command-line run each, which in a sanitizer build on a loaded
  // machine takes longer than the rate's second and would let the bucket refill between tries.
  std::vector<std::string> tokens;
  for (int i = 0; i < 20; ++i) tokens.push_back(NewJoinToken());
  const auto start = std::chrono::steady_clock::now();
  Status refused;
  std::string refused_token;
  int attested = 1;
  for (size_t i = 0; i < tokens.size() && refused.ok(); ++i) {
    refused_token = tokens[i];
    auto svid = AttestNewAgent(refused_token);
    if (svid.ok()) {
      ++attested;
    } else {
      refused = svid.status();
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(refused.ok()) << attested << " attestations in " << seconds << " s, none refused";
  EXPECT_LE(attested, 3 + static_cast<int>(seconds) + 2) << "in " << seconds << " s";
  EXPECT_EQ(refused.code(), Code::kResourceExhausted) << refused.ToString();
  EXPECT_NE(refused.message().find("attestations from 127.0.0.1 exceed 1 per second"), std::string::npos)
      << refused.ToString();
  // Refused before any work: the join token is still good once the rate allows.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  auto later = AttestNewAgent(refused_token);
  EXPECT_TRUE(later.ok()) << later.status().ToString();
}

TEST_F(AgentApiRateLimitTest, AnAgentOverItsSvidRateIsRefusedWholeAndLoggedOnce) {
  const std::string mine = CreateEntry("/mine", agent_id_);
  auto key = hw::GenerateSoftKey(KeyType::kEcP256);
  ASSERT_TRUE(key.ok());
  const Bytes csr = *MakeCsr(key->get());
  auto answer = SignCsrBatchRaw(AliasedBatch(mine, csr, 1000));
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  ASSERT_TRUE(wire::VerifiedMessage<wire::CsrBatchResponse>(Span(*answer)).ok()) << "the burst was not signed";

  for (int attempt = 0; attempt < 3; ++attempt) {
    auto over = SignCsrBatchRaw(AliasedBatch(mine, csr, 10));
    ASSERT_TRUE(over.ok()) << over.status().ToString();
    auto outcome = wire::VerifiedMessage<wire::Outcome>(Span(*over));
    ASSERT_TRUE(outcome.ok()) << "signed beyond the agent's rate";
    const Status refused = wire::StatusFromOutcome(*outcome);
    EXPECT_EQ(refused.code(), Code::kResourceExhausted) << refused.ToString();
    EXPECT_NE(refused.message().find("asked for 10 SVIDs, over its 1 per second"), std::string::npos)
        << refused.ToString();
  }
  const std::string line = OnlyLineWith(server_->logs(), kRefusalLine);
  EXPECT_NE(line.find("svids_per_second_per_agent"), std::string::npos) << "want one line for three refusals:\n"
                                                                          << server_->logs();
}

}  // namespace
}  // namespace sigil::testing
