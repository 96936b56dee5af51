// serverd's agent API against a real `serverd run` (CA key in a SoftHSM2 token), called over
// HTTP/2 + TLS on loopback by agentd's own client, as an agent would. Tokens, agents and
// entries are made through the `serverd` command line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "agentd/sync/server_client.h"
#include "core/csr.h"
#include "core/jwt_svid.h"
#include "core/wire/convert.h"
#include "core/x509_svid.h"
#include "core/trust_bundle.h"
#include "hw/soft_key_store.h"
#include "tests/support/process_usage.h"
#include "tests/support/serverd_process.h"
#include "transport/http2_client.h"

namespace sigil::testing {
namespace {

using agentd::CsrRequestItem;
using agentd::ServerClient;
using nlohmann::json;

const TrustDomain kTd = *TrustDomain::Parse("example.org");

Bytes NewCsr(EvpPkeyPtr* key_out = nullptr) {
  auto key = hw::GenerateSoftKey(KeyType::kEcP256);
  EXPECT_TRUE(key.ok());
  auto csr = MakeCsr(key->get());
  EXPECT_TRUE(csr.ok());
  if (key_out != nullptr) *key_out = std::move(*key);
  return *csr;
}

Result<SpiffeId> VerifyChain(const std::vector<Bytes>& chain_der, const X509Bundle& bundle) {
  std::vector<X509Ptr> certs;
  std::vector<X509*> raw;
  for (const Bytes& der : chain_der) {
    SIGIL_ASSIGN_OR_RETURN(X509Ptr cert, CertFromDer(der));
    raw.push_back(cert.get());
    certs.push_back(std::move(cert));
  }
  return VerifyX509Svid(raw, bundle);
}

// An agent as the server sees it: a client, a key, and (once attested) an SVID.
struct TestAgent {
  transport::LoopThread loop;
  std::unique_ptr<ServerClient> client;
  EvpPkeyPtr key;
  std::string id;
  std::vector<Bytes> chain;

  Status UseSvid(std::vector<Bytes> svid_chain) {
    chain = std::move(svid_chain);
    auto credentials = std::make_shared<transport::TlsCredentials>();
    SIGIL_ASSIGN_OR_RETURN(credentials->leaf, CertFromDer(chain.front()));
    for (size_t i = 1; i < chain.size(); ++i) {
      SIGIL_ASSIGN_OR_RETURN(X509Ptr cert, CertFromDer(chain[i]));
      credentials->intermediates.push_back(std::move(cert));
    }
    credentials->key = UpRef(key.get());
    return client->SetAgentCredentials(credentials);
  }
};

class AgentApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto hsm = SoftHsm::Create();
    ASSERT_TRUE(hsm.ok()) << hsm.status().ToString();
    hsm_ = std::move(*hsm).release();
    ServerdOptions options;
    options.top_level_yaml = "signing:\n  workers: 2\n  max_batch: 32\n";
    auto server = ServerdProcess::Create(*hsm_, "agent-api", options);
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
  }

  static ProcessOutput Cli(std::vector<std::string> args) {
    auto out = server_->Cli(std::move(args));
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : ProcessOutput{};
  }

  static std::string NewToken(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"token", "generate"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto out = Cli(args);
    EXPECT_EQ(out.exit_code, 0) << out.err;
    const std::string prefix = "Token: ";
    EXPECT_EQ(out.out.rfind(prefix, 0), 0u) << out.out;
    std::string token = out.out.substr(prefix.size());
    while (!token.empty() && token.back() == '\n') token.pop_back();
    return token;
  }

  static X509Bundle Bundle() {
    auto pem = Cli({"bundle", "show"});
    EXPECT_EQ(pem.exit_code, 0) << pem.err;
    auto bundle = X509BundleFromPem(kTd, pem.out);
    EXPECT_TRUE(bundle.ok()) << bundle.status().ToString();
    return bundle.ok() ? *bundle : X509Bundle(kTd);
  }

  static std::string CreateEntry(const std::string& spiffe_id, const std::string& parent_id,
                                 std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"entry", "create", "-spiffeID", spiffe_id, "-parentID", parent_id,
                                     "-selector", "unix:uid:1000", "-output", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto out = Cli(args);
    EXPECT_EQ(out.exit_code, 0) << out.err;
    auto parsed = json::parse(out.out, nullptr, false);
    return parsed["results"][0]["entry"].value("id", "");
  }

  std::unique_ptr<TestAgent> NewAgent() {
    auto agent = std::make_unique<TestAgent>();
    agent->loop.Start();
    ServerClient::Options options;
    options.endpoint = {.host = "127.0.0.1", .port = server_->agent_port()};
    options.trust_domain = kTd;
    options.timeout = std::chrono::seconds(20);
    agent->client = std::make_unique<ServerClient>(options, &agent->loop.loop());
    EXPECT_TRUE(agent->client->SetBundle(Bundle()).ok());
    return agent;
  }

  // A new agent, attested with a fresh join token.
  std::unique_ptr<TestAgent> AttestedAgent(std::vector<std::string> token_flags = {}) {
    auto agent = NewAgent();
    const std::string token = NewToken(token_flags);
    auto svid = agent->client->AttestWithJoinToken(token, NewCsr(&agent->key));
    EXPECT_TRUE(svid.ok()) << svid.status().ToString();
    if (!svid.ok()) return agent;
    agent->id = svid->agent_id.str();
    EXPECT_TRUE(agent->UseSvid(svid->chain_der).ok());
    return agent;
  }

  static inline SoftHsm* hsm_ = nullptr;
  static inline ServerdProcess* server_ = nullptr;
};

TEST_F(AgentApiTest, JoinTokenAttestsOnceAndNeverAgain) {
  auto agent = NewAgent();
  const std::string token = NewToken();
  auto svid = agent->client->AttestWithJoinToken(token, NewCsr(&agent->key));
  ASSERT_TRUE(svid.ok()) << svid.status().ToString();
  EXPECT_EQ(svid->agent_id.str(), "spiffe://example.org/spire/agent/join_token/" + token);
  auto verified = VerifyChain(svid->chain_der, svid->bundle.x509);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->str(), svid->agent_id.str());
  EXPECT_FALSE(svid->bundle.jwt.authorities.empty());

  auto shown = Cli({"agent", "show", "-spiffeID", svid->agent_id.str()});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("join_token"), std::string::npos) << shown.out;

  auto again = NewAgent()->client->AttestWithJoinToken(token, NewCsr());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kPermissionDenied);
  EXPECT_NE(again.status().message().find("already used"), std::string::npos) << again.status().ToString();
}

TEST_F(AgentApiTest, ExpiredOrUnknownTokenIsRefusedAndABadCsrDoesNotSpendTheToken) {
  const std::string short_lived = NewToken({"-ttl", "1"});
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  auto expired = NewAgent()->client->AttestWithJoinToken(short_lived, NewCsr());
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.status().code(), Code::kPermissionDenied);
  EXPECT_NE(expired.status().message().find("expired"), std::string::npos) << expired.status().ToString();

  auto unknown = NewAgent()->client->AttestWithJoinToken("not-a-token", NewCsr());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), Code::kPermissionDenied);

  const std::string token = NewToken();
  auto agent = NewAgent();
  Bytes garbage = {0x30, 0x03, 0x02, 0x01, 0x01};
  auto bad_csr = agent->client->AttestWithJoinToken(token, garbage);
  ASSERT_FALSE(bad_csr.ok());
  EXPECT_EQ(bad_csr.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad_csr.status().message().find("agent CSR"), std::string::npos) << bad_csr.status().ToString();
  EXPECT_TRUE(agent->client->AttestWithJoinToken(token, NewCsr()).ok());
}

TEST_F(AgentApiTest, AnAgentSignsOnlyItsOwnEntriesEachItemAnsweredAlone) {
  auto a = AttestedAgent();
  auto b = AttestedAgent();
  const std::string mine = CreateEntry("spiffe://example.org/a/web", a->id, {"-dns", "web.example.org"});
  const std::string theirs = CreateEntry("spiffe://example.org/b/db", b->id);
  const std::string before = Cli({"entry", "count"}).out;

  auto results = a->client->SignCsrBatch({{mine, NewCsr()}, {theirs, NewCsr()}, {"no-such-entry", NewCsr()}});
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  ASSERT_EQ(results->size(), 3u);
  ASSERT_TRUE((*results)[0].status.ok()) << (*results)[0].status.ToString();
  auto id = VerifyChain((*results)[0].chain_der, Bundle());
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(id->str(), "spiffe://example.org/a/web");
  auto leaf = CertFromDer((*results)[0].chain_der.front());
  ASSERT_TRUE(leaf.ok());
  // The validity serverd states is the leaf's own: the agent rotates by it without parsing.
  ASSERT_TRUE((*results)[0].validity.has_value());
  EXPECT_EQ((*results)[0].validity->first, CertNotBefore(leaf->get()));
  EXPECT_EQ((*results)[0].validity->second, CertNotAfter(leaf->get()));

  EXPECT_EQ((*results)[1].status.code(), Code::kPermissionDenied);
  EXPECT_FALSE((*results)[1].validity.has_value());
  EXPECT_NE((*results)[1].status.message().find("not authorized for agent " + a->id), std::string::npos)
      << (*results)[1].status.ToString();
  EXPECT_TRUE((*results)[1].chain_der.empty());
  EXPECT_EQ((*results)[2].status.code(), Code::kPermissionDenied);
  EXPECT_TRUE((*results)[2].chain_der.empty());
  EXPECT_EQ(Cli({"entry", "count"}).out, before);

  // The same refusal for JWT-SVIDs; its own entry mints a token the bundle validates.
  auto refused_jwt = a->client->MintJwtSvid(theirs, {"db"});
  ASSERT_FALSE(refused_jwt.ok());
  EXPECT_EQ(refused_jwt.status().code(), Code::kPermissionDenied);
  auto jwt = a->client->MintJwtSvid(mine, {"payments"});
  ASSERT_TRUE(jwt.ok()) << jwt.status().ToString();
  auto sync = a->client->SyncEntries(0, std::chrono::milliseconds(0));
  ASSERT_TRUE(sync.ok()) << sync.status().ToString();
  auto validated = ValidateJwtSvid(jwt->token, sync->bundle.jwt, "payments");
  ASSERT_TRUE(validated.ok()) << validated.status().ToString();
  EXPECT_EQ(validated->spiffe_id.str(), "spiffe://example.org/a/web");
}

TEST_F(AgentApiTest, OneMalformedCsrInABatchOf64FailsAlone) {
  auto agent = AttestedAgent();
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(CreateEntry("spiffe://example.org/batch/" + std::to_string(i), agent->id));
  std::vector<CsrRequestItem> items;
  for (int i = 0; i < 64; ++i) items.push_back({ids[static_cast<size_t>(i) % ids.size()], NewCsr()});
  items[37].csr_der[items[37].csr_der.size() / 2] ^= 0x5a;  // breaks its self-signature or its DER
  auto results = agent->client->SignCsrBatch(items);
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  ASSERT_EQ(results->size(), 64u);
  const X509Bundle bundle = Bundle();
  for (size_t i = 0; i < results->size(); ++i) {
    const auto& result = (*results)[i];
    EXPECT_EQ(result.entry_id, items[i].entry_id);
    if (i == 37) {
      EXPECT_EQ(result.status.code(), Code::kInvalidArgument) << result.status.ToString();
      EXPECT_NE(result.status.message().find("CSR"), std::string::npos) << result.status.ToString();
      EXPECT_TRUE(result.chain_der.empty());
      continue;
    }
    ASSERT_TRUE(result.status.ok()) << i << ": " << result.status.ToString();
    auto id = VerifyChain(result.chain_der, bundle);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    EXPECT_EQ(id->str(), "spiffe://example.org/batch/" + std::to_string(i % ids.size()));
  }
}

TEST_F(AgentApiTest, NodeAliasGrantsItsEntriesToTheTokensAgent) {
  auto agent = AttestedAgent({"-spiffeID", "spiffe://example.org/host/rack9"});
  const std::string via_alias = CreateEntry("spiffe://example.org/rack9/app", "spiffe://example.org/host/rack9");
  auto results = agent->client->SignCsrBatch({{via_alias, NewCsr()}});
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  ASSERT_TRUE((*results)[0].status.ok()) << (*results)[0].status.ToString();
  auto other = AttestedAgent();
  auto refused = other->client->SignCsrBatch({{via_alias, NewCsr()}});
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ((*refused)[0].status.code(), Code::kPermissionDenied);
}

TEST_F(AgentApiTest, RenewalOverMutualTlsThenBanAndEviction) {
  auto agent = AttestedAgent();
  const std::string entry = CreateEntry("spiffe://example.org/renew/app", agent->id);
  auto old_leaf = CertFromDer(agent->chain.front());
  ASSERT_TRUE(old_leaf.ok());
  auto renewed = agent->client->RenewAgentSvid(NewCsr(&agent->key));
  ASSERT_TRUE(renewed.ok()) << renewed.status().ToString();
  EXPECT_EQ(renewed->agent_id.str(), agent->id);
  auto new_leaf = CertFromDer(renewed->chain_der.front());
  ASSERT_TRUE(new_leaf.ok());
  EXPECT_NE(SerialHex(new_leaf->get()), SerialHex(old_leaf->get()));
  ASSERT_TRUE(agent->UseSvid(renewed->chain_der).ok());
  auto shown = Cli({"agent", "show", "-spiffeID", agent->id, "-output", "json"});
  EXPECT_NE(shown.out.find(SerialHex(new_leaf->get())), std::string::npos) << shown.out;
  auto signed_ok = agent->client->SignCsrBatch({{entry, NewCsr()}});
  ASSERT_TRUE(signed_ok.ok()) << signed_ok.status().ToString();

  // Without an SVID nothing but Attest is served.
  auto anonymous = NewAgent();
  auto no_svid = anonymous->client->SyncEntries(0, std::chrono::milliseconds(0));
  ASSERT_FALSE(no_svid.ok());
  EXPECT_EQ(no_svid.status().code(), Code::kUnauthenticated);

  ASSERT_EQ(Cli({"agent", "ban", "-spiffeID", agent->id}).exit_code, 0);
  auto banned = agent->client->SignCsrBatch({{entry, NewCsr()}});
  ASSERT_FALSE(banned.ok());
  EXPECT_EQ(banned.status().code(), Code::kPermissionDenied);
  EXPECT_NE(banned.status().message().find("banned"), std::string::npos) << banned.status().ToString();
  auto banned_renew = agent->client->RenewAgentSvid(NewCsr());
  EXPECT_EQ(banned_renew.status().code(), Code::kPermissionDenied);

  auto evictee = AttestedAgent();
  ASSERT_EQ(Cli({"agent", "evict", "-spiffeID", evictee->id}).exit_code, 0);
  auto evicted = evictee->client->SyncEntries(0, std::chrono::milliseconds(0));
  ASSERT_FALSE(evicted.ok());
  EXPECT_EQ(evicted.status().code(), Code::kUnauthenticated);
  EXPECT_NE(evicted.status().message().find("attest again"), std::string::npos) << evicted.status().ToString();
}

// A copied agent SVID lives only until the agent renews twice: the one before the current stays
// accepted for a short overlap, so calls made while a renewal is answered still go through.
TEST_F(AgentApiTest, AfterTwoRenewalsTheFirstAgentSvidIsRefused) {
  auto agent = AttestedAgent();
  // Other clients holding the agent's SVIDs as they were, as whoever copied them would.
  auto HoldingCurrentSvid = [&] {
    auto holder = NewAgent();
    holder->key = UpRef(agent->key.get());
    EXPECT_TRUE(holder->UseSvid(agent->chain).ok());
    return holder;
  };
  auto first = HoldingCurrentSvid();
  ASSERT_TRUE(first->client->SyncEntries(0, std::chrono::milliseconds(0)).ok());
  std::unique_ptr<TestAgent> second;
  for (int renewal = 0; renewal < 2; ++renewal) {
    auto renewed = agent->client->RenewAgentSvid(NewCsr(&agent->key));
    ASSERT_TRUE(renewed.ok()) << renewed.status().ToString();
    ASSERT_TRUE(agent->UseSvid(renewed->chain_der).ok());
    if (renewal == 0) second = HoldingCurrentSvid();
  }

  auto stale = first->client->SyncEntries(0, std::chrono::milliseconds(0));
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.status().code(), Code::kUnauthenticated) << stale.status().ToString();
  EXPECT_NE(stale.status().message().find("attest again"), std::string::npos) << stale.status().ToString();
  auto previous = second->client->SyncEntries(0, std::chrono::milliseconds(0));
  EXPECT_TRUE(previous.ok()) << previous.status().ToString();
  auto current = agent->client->SyncEntries(0, std::chrono::milliseconds(0));
  EXPECT_TRUE(current.ok()) << current.status().ToString();
}

TEST_F(AgentApiTest, EntryChangesReachASyncingAgentByRevision) {
  auto agent = AttestedAgent();
  const std::string first = CreateEntry("spiffe://example.org/sync/one", agent->id);
  auto full = agent->client->SyncEntries(0, std::chrono::milliseconds(0));
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_TRUE(full->full);
  ASSERT_EQ(full->entries.size(), 1u);
  EXPECT_EQ(full->entries[0].id, first);
  EXPECT_EQ(full->entries[0].spiffe_id, "spiffe://example.org/sync/one");
  EXPECT_GT(full->revision, 0);

  // A long poll with nothing new waits; an entry made meanwhile ends it within a second.
  std::string second;
  std::thread creator([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    second = CreateEntry("spiffe://example.org/sync/two", agent->id);
  });
  const auto started = std::chrono::steady_clock::now();
  auto incremental = agent->client->SyncEntries(full->revision, std::chrono::seconds(10));
  const auto waited = std::chrono::steady_clock::now() - started;
  creator.join();
  ASSERT_TRUE(incremental.ok()) << incremental.status().ToString();
  EXPECT_FALSE(incremental->full);
  ASSERT_EQ(incremental->entries.size(), 1u);
  EXPECT_EQ(incremental->entries[0].id, second);
  EXPECT_GT(incremental->revision, full->revision);
  EXPECT_GE(waited, std::chrono::milliseconds(600));
  EXPECT_LT(waited, std::chrono::milliseconds(700 + 1000 + 1500));  // the CLI itself takes a moment

  // An entry of another agent changes nothing for this one: the poll runs to its end.
  auto other = AttestedAgent();
  CreateEntry("spiffe://example.org/sync/elsewhere", other->id);
  auto quiet = agent->client->SyncEntries(incremental->revision, std::chrono::milliseconds(400));
  ASSERT_TRUE(quiet.ok()) << quiet.status().ToString();
  EXPECT_FALSE(quiet->full);
  EXPECT_TRUE(quiet->entries.empty());
  EXPECT_TRUE(quiet->removed_entry_ids.empty());

  ASSERT_EQ(Cli({"entry", "update", "-entryID", first, "-spiffeID", "spiffe://example.org/sync/one", "-parentID",
                 agent->id, "-selector", "unix:uid:1001"}).exit_code, 0);
  ASSERT_EQ(Cli({"entry", "delete", "-entryID", second}).exit_code, 0);
  auto changes = agent->client->SyncEntries(quiet->revision, std::chrono::seconds(5));
  ASSERT_TRUE(changes.ok()) << changes.status().ToString();
  EXPECT_FALSE(changes->full);
  ASSERT_EQ(changes->entries.size(), 1u);
  EXPECT_EQ(changes->entries[0].id, first);
  EXPECT_EQ(changes->entries[0].selectors[0].value, "uid:1001");
  ASSERT_EQ(changes->removed_entry_ids.size(), 1u);
  EXPECT_EQ(changes->removed_entry_ids[0], second);

  // A revision the server never gave this agent gets the whole set again.
  auto resync = agent->client->SyncEntries(1, std::chrono::milliseconds(0));
  ASSERT_TRUE(resync.ok());
  EXPECT_TRUE(resync->full);
  EXPECT_EQ(resync->entries.size(), 1u);
}

TEST_F(AgentApiTest, AnAttestedAgentHoldsOneConnectionToServerd) {
  // Attestation needs a connection without a client certificate; once the agent has its SVID
  // every call is mutual TLS, and the attestation's connection is closed, not held for life.
  // The fixture's own connections (its readiness probe, its command-line runs) may still be
  // closing on a loaded machine: the count before is taken once it has held still for 200 ms.
  size_t before = OpenDescriptors(server_->pid(), /*sockets_only=*/true);
  for (int i = 0, steady = 0; i < 60 && steady < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const size_t again = OpenDescriptors(server_->pid(), /*sockets_only=*/true);
    steady = again == before ? steady + 1 : 0;
    before = again;
  }
  auto agent = AttestedAgent();
  ASSERT_TRUE(agent->client->SyncEntries(0, std::chrono::milliseconds(0)).ok());
  size_t now = OpenDescriptors(server_->pid(), /*sockets_only=*/true);
  for (int i = 0; i < 60 && now != before + 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    now = OpenDescriptors(server_->pid(), /*sockets_only=*/true);
  }
  EXPECT_EQ(now, before + 1) << "serverd holds " << now - before << " connections of one attested agent";
}

TEST_F(AgentApiTest, ManyLongPollsEachEndAtTheirOwnWait) {
  // Polls of one agent with waits from 100 ms to 2 s, all parked at once: each is answered once,
  // not before its wait and not long after, whatever the others' waits.
  auto agent = AttestedAgent();
  CreateEntry("spiffe://example.org/polls/one", agent->id);
  auto full = agent->client->SyncEntries(0, std::chrono::milliseconds(0));
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  constexpr int kPolls = 20;
  std::vector<std::chrono::milliseconds> waits(kPolls);
  std::vector<std::chrono::steady_clock::duration> took(kPolls);
  std::vector<Status> outcomes(kPolls);
  std::vector<std::thread> polls;
  for (int i = 0; i < kPolls; ++i) {
    waits[i] = std::chrono::milliseconds(100 + (i * 1900 / (kPolls - 1)));
    polls.emplace_back([&, i] {
      const auto started = std::chrono::steady_clock::now();
      auto answer = agent->client->SyncEntries(full->revision, waits[i]);
      took[i] = std::chrono::steady_clock::now() - started;
      outcomes[i] = answer.ok() ? (answer->entries.empty() ? Status::Ok() : InternalError("news from nowhere"))
                                : answer.status();
    });
  }
  for (auto& poll : polls) poll.join();
  for (int i = 0; i < kPolls; ++i) {
    EXPECT_TRUE(outcomes[i].ok()) << "poll " << i << ": " << outcomes[i].ToString();
    EXPECT_GE(took[i], waits[i] - std::chrono::milliseconds(5)) << "poll " << i << " answered before its wait";
    EXPECT_LT(took[i], waits[i] + std::chrono::milliseconds(1500)) << "poll " << i << " answered long after its wait";
  }
}

TEST_F(AgentApiTest, MalformedRequestsAreRefusedByName) {
  auto agent = AttestedAgent();
  transport::Endpoint endpoint{.host = "127.0.0.1", .port = server_->agent_port()};
  transport::TlsOptions tls;
  tls.insecure_skip_verify = true;
  auto context = transport::TlsContext::CreateClient(tls);
  ASSERT_TRUE(context.ok());
  auto response = transport::Http2RequestBlocking(endpoint, "POST", wire::kAttestPath,
                                                  {{"content-type", wire::kContentType}}, "not a flatbuffer", *context);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 200);
  auto message = wire::VerifiedMessage<wire::Outcome>(
      std::span(reinterpret_cast<const uint8_t*>(response->body.data()), response->body.size()));
  ASSERT_TRUE(message.ok()) << message.status().ToString();
  Status refused = wire::StatusFromOutcome(*message);
  EXPECT_EQ(refused.code(), Code::kInvalidArgument);
  EXPECT_NE(refused.message().find("identifier \"SGL1\""), std::string::npos) << refused.ToString();

  auto get = transport::Http2RequestBlocking(endpoint, "GET", wire::kAttestPath, {}, "", *context);
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->status, 405);
  auto unknown = transport::Http2RequestBlocking(endpoint, "POST", "/sigil.agent.v1.Agent/Nope", {}, "", *context);
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 404);
}

// A tiny queue and one signer: a big batch overflows it, and the overflow is told to back off
// while everything that was queued is signed.
TEST(AgentApiBackPressureTest, AFullQueueAnswersResourceExhaustedPerItem) {
  auto hsm = SoftHsm::Create();
  ASSERT_TRUE(hsm.ok()) << hsm.status().ToString();
  ServerdOptions options;
  options.top_level_yaml = "signing:\n  workers: 1\n  queue_capacity: 16\n  max_batch: 4\n";
  auto server = ServerdProcess::Create(**hsm, "back-pressure", options);
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE((*server)->Start().ok()) << (*server)->logs();
  auto token = (*server)->Cli({"token", "generate"});
  ASSERT_TRUE(token.ok());
  const std::string value = token->out.substr(7, token->out.size() - 8);
  auto entry = (*server)->Cli({"entry", "create", "-spiffeID", "spiffe://example.org/bp", "-parentID",
                               "spiffe://example.org/spire/agent/join_token/" + value, "-selector", "unix:uid:1",
                               "-output", "json"});
  ASSERT_TRUE(entry.ok());
  const std::string entry_id = json::parse(entry->out)["results"][0]["entry"].value("id", "");
  auto pem = (*server)->Cli({"bundle", "show"});
  auto bundle = X509BundleFromPem(kTd, pem->out);
  ASSERT_TRUE(bundle.ok());

  TestAgent agent;
  agent.loop.Start();
  agent.client = std::make_unique<ServerClient>(
      ServerClient::Options{.endpoint = {.host = "127.0.0.1", .port = (*server)->agent_port()}, .trust_domain = kTd},
      &agent.loop.loop());
  ASSERT_TRUE(agent.client->SetBundle(*bundle).ok());
  auto svid = agent.client->AttestWithJoinToken(value, NewCsr(&agent.key));
  ASSERT_TRUE(svid.ok()) << svid.status().ToString();
  ASSERT_TRUE(agent.UseSvid(svid->chain_der).ok());

  std::vector<CsrRequestItem> items;
  for (int i = 0; i < 256; ++i) items.push_back({entry_id, NewCsr()});
  auto results = agent.client->SignCsrBatch(items);
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  int signed_count = 0;
  int backed_off = 0;
  for (const auto& result : *results) {
    if (result.status.ok()) {
      ++signed_count;
      EXPECT_TRUE(VerifyChain(result.chain_der, *bundle).ok());
    } else {
      EXPECT_EQ(result.status.code(), Code::kResourceExhausted) << result.status.ToString();
      EXPECT_NE(result.status.message().find("back-off"), std::string::npos) << result.status.ToString();
      ++backed_off;
    }
  }
  EXPECT_GE(signed_count, 16);
  EXPECT_GT(backed_off, 0);
  EXPECT_EQ(signed_count + backed_off, 256);
  (*server)->Stop();
}

// A join token is spent only with the agent's record, after its SVID was signed: when the CA
// key refuses to sign (here forbidden to in its token, as an operator could), the token stays
// good for the agent's next try.
TEST(AgentApiJoinTokenTest, ASigningFailureLeavesTheJoinTokenUsable) {
  auto hsm = SoftHsm::Create();
  ASSERT_TRUE(hsm.ok()) << hsm.status().ToString();
  const std::string token_label = "token-kept";
  auto server = ServerdProcess::Create(**hsm, token_label);  // direct: the token's key signs each SVID
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE((*server)->Start().ok()) << (*server)->logs();
  auto token = (*server)->Cli({"token", "generate"});
  ASSERT_TRUE(token.ok());
  const std::string value = token->out.substr(7, token->out.size() - 8);
  auto pem = (*server)->Cli({"bundle", "show"});
  auto bundle = X509BundleFromPem(kTd, pem->out);
  ASSERT_TRUE(bundle.ok());
  auto NewClient = [&] {
    auto agent = std::make_unique<TestAgent>();
    agent->loop.Start();
    agent->client = std::make_unique<ServerClient>(
        ServerClient::Options{.endpoint = {.host = "127.0.0.1", .port = (*server)->agent_port()}, .trust_domain = kTd},
        &agent->loop.loop());
    EXPECT_TRUE(agent->client->SetBundle(*bundle).ok());
    return agent;
  };

  auto agent = NewClient();
  ASSERT_TRUE((*hsm)->SetSigningAllowed(token_label, "1234", "ca-", false).ok());
  auto refused = agent->client->AttestWithJoinToken(value, NewCsr(&agent->key));
  ASSERT_TRUE((*hsm)->SetSigningAllowed(token_label, "1234", "ca-", true).ok());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("sign"), std::string::npos) << refused.status().ToString();

  auto attested = agent->client->AttestWithJoinToken(value, NewCsr(&agent->key));
  ASSERT_TRUE(attested.ok()) << attested.status().ToString();
  EXPECT_EQ(attested->agent_id.str(), "spiffe://example.org/spire/agent/join_token/" + value);
  ASSERT_TRUE(agent->UseSvid(attested->chain_der).ok());
  EXPECT_TRUE(agent->client->SyncEntries(0, std::chrono::milliseconds(0)).ok());
  auto again = NewClient()->client->AttestWithJoinToken(value, NewCsr());
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("already used"), std::string::npos) << again.status().ToString();
  (*server)->Stop();
}

}  // namespace
}  // namespace sigil::testing
