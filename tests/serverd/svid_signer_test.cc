// The signing pipeline's typed jobs with real soft-key CAs: a batch that holds jobs of two CA
// states is signed group by group, each job by the CA it was queued under, and handed back to
// its loop once; a full queue refuses at once and never completes the refused job.
#include "serverd/ca/svid_signer.h"

#include <gtest/gtest.h>

#include <latch>
#include <mutex>
#include <thread>

#include "core/csr.h"
#include "hw/soft_key_store.h"
#include "transport/event_loop.h"

namespace sigil::serverd {
namespace {

const TrustDomain kTd = *TrustDomain::Parse("example.org");

std::shared_ptr<Signer> NewSoftSigner() {
  auto key = hw::GenerateSoftKey(KeyType::kEcP256);
  EXPECT_TRUE(key.ok());
  auto signer = hw::MakeSoftSigner(std::move(*key));
  EXPECT_TRUE(signer.ok());
  return *signer;
}

// A CA state as CaManager publishes it: a root of its own and a JWT key named `jwt_key_id`.
std::shared_ptr<const CaManager::Current> NewCaState(const std::string& jwt_key_id) {
  auto state = std::make_shared<CaManager::Current>(kTd);
  auto root = X509Ca::NewRoot(kTd, NewSoftSigner(), {});
  EXPECT_TRUE(root.ok()) << root.status().ToString();
  state->issuer = std::make_shared<const X509Ca>(std::move(*root));
  state->bundle.x509.Add(state->issuer->cert());
  state->jwt_key = NewSoftSigner();
  state->jwt_key_id = jwt_key_id;
  state->bundle.jwt.authorities[jwt_key_id] = JwtAuthority(UpRef(state->jwt_key->public_key()));
  return state;
}

Bytes NewCsr() {
  auto key = hw::GenerateSoftKey(KeyType::kEcP256);
  EXPECT_TRUE(key.ok());
  auto csr = MakeCsr(key->get());
  EXPECT_TRUE(csr.ok());
  return *csr;
}

// A real event loop as the completion target, counting the hand-offs it is given.
class CountingLoopTarget final : public CompletionTarget {
 public:
  CountingLoopTarget() { loop_.Start(); }
  void PostBatch(std::vector<std::function<void()>> completions) override {
    hand_offs_.fetch_add(1);
    loop_.loop().Post([completions = std::move(completions)] {
      for (const auto& complete : completions) complete();
    });
  }
  bool InLoopThread() { return loop_.loop().InLoopThread(); }
  int hand_offs() const { return hand_offs_.load(); }
  void Stop() { loop_.Stop(); }

 private:
  transport::LoopThread loop_;
  std::atomic<int> hand_offs_{0};
};

struct Collected final : X509SvidCompletion, JwtSvidCompletion {
  explicit Collected(CountingLoopTarget* loop) : loop(loop) {}
  void OnSigned(size_t item, Result<X509SvidDer> svid) override {
    std::lock_guard lock(mutex);
    if (loop != nullptr && !loop->InLoopThread()) ++off_loop;
    x509.emplace_back(item, std::move(svid));
  }
  void OnSigned(Result<JwtSvid> jwt_svid) override {
    std::lock_guard lock(mutex);
    if (loop != nullptr && !loop->InLoopThread()) ++off_loop;
    jwt.push_back(std::move(jwt_svid));
  }
  CountingLoopTarget* loop;
  std::mutex mutex;
  std::vector<std::pair<size_t, Result<X509SvidDer>>> x509;
  std::vector<Result<JwtSvid>> jwt;
  int off_loop = 0;
};

// Runs on the signer worker itself (no target) and holds it until released, so that the jobs
// queued meanwhile are taken as one batch.
struct HoldsTheWorker final : X509SvidCompletion {
  void OnSigned(size_t, Result<X509SvidDer> svid) override {
    signed_ok = svid.ok();
    holding.count_down();
    release.wait();
  }
  std::latch holding{1};
  std::latch release{1};
  bool signed_ok = false;
};

Result<SpiffeId> VerifyAgainst(const X509SvidDer& svid, const CaManager::Current& ca) {
  std::vector<X509Ptr> certs;
  std::vector<X509*> raw;
  for (const Bytes& der : svid.chain_der) {
    SIGIL_ASSIGN_OR_RETURN(X509Ptr cert, CertFromDer(der));
    raw.push_back(cert.get());
    certs.push_back(std::move(cert));
  }
  return VerifyX509Svid(raw, ca.bundle.x509);
}

TEST(SvidSignerTest, ABatchOfTwoCaStatesIsSignedByEachJobsOwnCaWithOneHandOff) {
  MetricsRegistry metrics;
  CountingLoopTarget loop;
  const auto ca_a = NewCaState("key-a");
  const auto ca_b = NewCaState("key-b");
  auto collected = std::make_shared<Collected>(&loop);
  auto holder = std::make_shared<HoldsTheWorker>();
  std::vector<Bytes> csrs;
  for (int i = 0; i < 8; ++i) csrs.push_back(NewCsr());
  auto agent_key = hw::GenerateSoftKey(KeyType::kEcP256);
  ASSERT_TRUE(agent_key.ok());
  auto checked_agent_key = CertifiableKey::Check(agent_key->get());
  ASSERT_TRUE(checked_agent_key.ok());
  {
    SvidSigner signer({.queue_capacity = 64, .workers = 1, .max_batch = 16, .max_wait = {}}, &metrics);
    const SpiffeId agent_id = *SpiffeId::Parse("spiffe://example.org/spire/agent/join_token/t");
    ASSERT_TRUE(signer.SignAgentX509Svid(ca_a, nullptr,
                                         {.key = std::move(*checked_agent_key),
                                          .params = {.agent_id = agent_id, .ttl = std::chrono::seconds(600)},
                                          .completion = holder})
                    .ok());
    holder->holding.wait();
    // Interleaved, as two requests on either side of a CA rotation would queue them.
    for (size_t i = 0; i < csrs.size(); ++i) {
      X509SvidParams params(*SpiffeId::Parse("spiffe://example.org/w/" + std::to_string(i)));
      ASSERT_TRUE(signer.SignWorkloadX509Svid(i % 2 == 0 ? ca_a : ca_b, &loop,
                                              {.csr_der = csrs[i], .params = params, .completion = collected, .item = i})
                      .ok());
    }
    JwtSvidParams jwt(*SpiffeId::Parse("spiffe://example.org/w/jwt"));
    jwt.audience = {"payments"};
    ASSERT_TRUE(signer.SignJwtSvid(ca_b, &loop, {.params = jwt, .completion = collected}).ok());
    holder->release.count_down();
    signer.Stop();
  }
  loop.Stop();  // runs what was posted before it stops

  EXPECT_TRUE(holder->signed_ok);
  ASSERT_EQ(collected->x509.size(), 8u);
  for (auto& [item, svid] : collected->x509) {
    ASSERT_TRUE(svid.ok()) << item << ": " << svid.status().ToString();
    const CaManager::Current& own = item % 2 == 0 ? *ca_a : *ca_b;
    const CaManager::Current& other = item % 2 == 0 ? *ca_b : *ca_a;
    auto verified = VerifyAgainst(*svid, own);
    ASSERT_TRUE(verified.ok()) << item << ": " << verified.status().ToString();
    EXPECT_EQ(verified->str(), "spiffe://example.org/w/" + std::to_string(item));
    EXPECT_FALSE(VerifyAgainst(*svid, other).ok()) << item;
  }
  ASSERT_EQ(collected->jwt.size(), 1u);
  ASSERT_TRUE(collected->jwt[0].ok()) << collected->jwt[0].status().ToString();
  EXPECT_TRUE(ValidateJwtSvid(collected->jwt[0]->token, ca_b->bundle.jwt, "payments").ok());
  EXPECT_FALSE(ValidateJwtSvid(collected->jwt[0]->token, ca_a->bundle.jwt, "payments").ok());
  EXPECT_EQ(collected->off_loop, 0);
  // Nine jobs for one loop in one batch: one hand-off.
  EXPECT_EQ(loop.hand_offs(), 1);
  const std::string text = metrics.Render();
  EXPECT_NE(text.find("signing_batch_size_count 2\n"), std::string::npos) << text;
  // The agent's batch had one CA state, the next two.
  EXPECT_NE(text.find("signing_issuer_groups_total 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("signing_items_total 10\n"), std::string::npos) << text;
}

TEST(SvidSignerTest, AFullQueueRefusesAtOnceAndNeverCompletesTheRefusedJob) {
  const auto ca = NewCaState("key");
  auto holder = std::make_shared<HoldsTheWorker>();
  auto collected = std::make_shared<Collected>(nullptr);
  const Bytes csr = NewCsr();
  auto agent_key = hw::GenerateSoftKey(KeyType::kEcP256);
  ASSERT_TRUE(agent_key.ok());
  auto checked_agent_key = CertifiableKey::Check(agent_key->get());
  ASSERT_TRUE(checked_agent_key.ok());
  SvidSigner signer({.queue_capacity = 4, .workers = 1, .max_batch = 4, .max_wait = {}}, nullptr);
  ASSERT_TRUE(signer.SignAgentX509Svid(ca, nullptr,
                                       {.key = std::move(*checked_agent_key),
                                        .params = {.agent_id = *SpiffeId::Parse("spiffe://example.org/spire/agent/a"),
                                                   .ttl = std::chrono::seconds(600)},
                                        .completion = holder})
                  .ok());
  holder->holding.wait();
  int accepted = 0;
  Status refused;
  for (size_t i = 0; i < 10 && refused.ok(); ++i) {
    X509SvidParams params(*SpiffeId::Parse("spiffe://example.org/w"));
    refused = signer.SignWorkloadX509Svid(ca, nullptr, {.csr_der = csr, .params = params, .completion = collected, .item = i});
    if (refused.ok()) ++accepted;
  }
  EXPECT_EQ(accepted, 4);
  EXPECT_EQ(refused.code(), Code::kResourceExhausted);
  EXPECT_NE(refused.message().find("back-off"), std::string::npos) << refused.ToString();
  holder->release.count_down();
  signer.Stop();
  ASSERT_EQ(collected->x509.size(), 4u);
  for (const auto& [item, svid] : collected->x509) {
    EXPECT_LT(item, 4u);
    EXPECT_TRUE(svid.ok()) << svid.status().ToString();
  }
}

}  // namespace
}  // namespace sigil::serverd
