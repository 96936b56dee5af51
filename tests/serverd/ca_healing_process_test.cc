// A CA whose key store fails, against a real `serverd run` (CA key in a SoftHSM2 token, direct
// mode, so every SVID is signed by the token): serverd says so in `healthcheck` and on /ready
// while it cannot sign, and once the token is back it signs again without a restart, the join
// token refused meanwhile still good.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <thread>

#include "agentd/sync/server_client.h"
#include "core/csr.h"
#include "hw/key_store.h"
#include "hw/soft_key_store.h"
#include "tests/support/process_usage.h"
#include "tests/support/serverd_process.h"
#include "transport/event_loop.h"

namespace sigil::testing {
namespace {

using agentd::ServerClient;

const TrustDomain kTd = *TrustDomain::Parse("example.org");

class CaHealingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto hsm = SoftHsm::Create();
    ASSERT_TRUE(hsm.ok()) << hsm.status().ToString();
    hsm_ = std::move(*hsm);
    health_port_ = FreeLoopbackPort();
    auto server = ServerdProcess::Create(
        *hsm_, kTokenLabel,
        {.top_level_yaml = "health_checks:\n  listener_enabled: true\n  bind_port: " + std::to_string(health_port_) + "\n"});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    ASSERT_TRUE(server_->Start().ok()) << server_->logs();
    auto bundle = X509BundleFromPem(kTd, Cli({"bundle", "show"}).out);
    ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
    loop_.Start();
    client_ = std::make_unique<ServerClient>(
        ServerClient::Options{.endpoint = {.host = "127.0.0.1", .port = server_->agent_port()}, .trust_domain = kTd},
        &loop_.loop());
    ASSERT_TRUE(client_->SetBundle(*bundle).ok());
  }

  void TearDown() override {
    if (server_) server_->Stop();
    if (HasFailure() && server_) std::cerr << "serverd logs:\n" << server_->logs().substr(0, 20'000);
  }

  ProcessOutput Cli(std::vector<std::string> args) { return server_->MustCli(std::move(args)); }

  std::string NewJoinToken() { return server_->NewJoinToken(); }

  Result<agentd::AgentSvidAnswer> Attest(const std::string& join_token) {
    SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, hw::GenerateSoftKey(KeyType::kEcP256));
    SIGIL_ASSIGN_OR_RETURN(Bytes csr, MakeCsr(key.get()));
    return client_->AttestWithJoinToken(join_token, csr);
  }

  // "<status> <body>" of GET /ready.
  std::string Ready() {
    auto out = RunProcess({"curl", "-s", "-w", " %{http_code}", "http://127.0.0.1:" + std::to_string(health_port_) + "/ready"});
    return out.ok() ? out->out : out.status().ToString();
  }

  bool Healthy() { return Cli({"healthcheck"}).exit_code == 0; }

  static constexpr char kTokenLabel[] = "healing";
  std::unique_ptr<SoftHsm> hsm_;
  std::unique_ptr<ServerdProcess> server_;
  int health_port_ = 0;
  transport::LoopThread loop_;
  std::unique_ptr<ServerClient> client_;
};

// The CA key is forbidden to sign in its token (as an operator could, with the token's own
// tools): the lookup `healthcheck` used to make still answers, yet no SVID can be issued.
TEST_F(CaHealingTest, HealthcheckAndReadyReportACaThatCannotSign) {
  ASSERT_TRUE(Healthy());
  ASSERT_NE(Ready().find("200"), std::string::npos);
  ASSERT_TRUE(hsm_->SetSigningAllowed(kTokenLabel, "1234", "ca-", false).ok());

  ProcessOutput check;
  EXPECT_TRUE(WaitUntil([&] {
    check = Cli({"healthcheck"});
    return check.exit_code != 0;
  }, std::chrono::seconds(10))) << "healthcheck passed while the CA could not sign";
  EXPECT_NE(check.err.find("the CA cannot sign"), std::string::npos) << check.err;
  std::string ready;
  EXPECT_TRUE(WaitUntil([&] {
    ready = Ready();
    return ready.find("503") != std::string::npos;
  }, std::chrono::seconds(10))) << ready;
  EXPECT_NE(ready.find("the CA cannot sign"), std::string::npos) << ready;
  EXPECT_FALSE(Attest(NewJoinToken()).ok());

  ASSERT_TRUE(hsm_->SetSigningAllowed(kTokenLabel, "1234", "ca-", true).ok());
  EXPECT_TRUE(WaitUntil([&] { return Healthy(); }, std::chrono::seconds(10)));
  EXPECT_TRUE(WaitUntil([&] { return Ready().find("200") != std::string::npos; }, std::chrono::seconds(10))) << Ready();
  auto attested = Attest(NewJoinToken());
  EXPECT_TRUE(attested.ok()) << attested.status().ToString();
}

// What a flood of connections did to serverd before listeners were bounded: its descriptors
// ran out while SoftHSM2 had to read its object files again (the token changed meanwhile), and
// SoftHSM2 dropped the objects it could not read. Every signature then failed with
// CKR_OBJECT_HANDLE_INVALID until a restart, while `healthcheck` said healthy. Here the
// descriptors run out by lowering serverd's open-file limit to what it holds.
TEST_F(CaHealingTest, SignsAgainWithoutARestartAfterTheKeyStoreRanOutOfDescriptors) {
  const std::string join_token = NewJoinToken();
  const pid_t pid = server_->pid();
  rlimit before{};
  ASSERT_EQ(prlimit(pid, RLIMIT_NOFILE, nullptr, &before), 0);
  rlimit exhausted = before;
  exhausted.rlim_cur = OpenDescriptors(pid) - 2;
  ASSERT_EQ(prlimit(pid, RLIMIT_NOFILE, &exhausted, nullptr), 0);
  // A key made and removed by another process makes serverd's SoftHSM2 read the token's
  // objects again, which it cannot.
  {
    ::setenv("SIGIL_TEST_TOKEN_PIN", "1234", 1);
    auto store = hw::OpenKeyStore(std::string("pkcs11:token=") + kTokenLabel + "?module-path=" + kSoftHsmModule +
                                  "&pin-source=env:SIGIL_TEST_TOKEN_PIN");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->CreateKey("bystander", KeyType::kEcP256).ok());
    ASSERT_TRUE((*store)->DeleteKey("bystander").ok());
  }
  // serverd's readiness check signs every second, so it meets the exhausted limit.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  ASSERT_EQ(prlimit(pid, RLIMIT_NOFILE, &before, nullptr), 0);

  EXPECT_TRUE(WaitUntil([&] { return Healthy(); }, std::chrono::seconds(40)))
      << "serverd did not heal: " << Cli({"healthcheck"}).err;
  auto attested = Attest(join_token);
  EXPECT_TRUE(attested.ok()) << "the join token was spent or the CA still cannot sign: " << attested.status().ToString();
  const ProcessOutput minted = Cli({"x509", "mint", "-spiffeID", "spiffe://example.org/after"});
  EXPECT_EQ(minted.exit_code, 0) << minted.err;
  EXPECT_NE(server_->logs().find("key store recovered"), std::string::npos);
}

}  // namespace
}  // namespace sigil::testing
