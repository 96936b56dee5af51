// TPM DevID node attestation end to end (issue 8): a real `serverd run` (CA key in SoftHSM2)
// trusting DevID CA 1 under node_attestors.tpm_devid, and hosts that are swtpm instances with
// EK certificates and DevIDs provisioned by tools/provision-devid. Host A (DevID from CA 1)
// attests with a real `agentd run` and serves its workloads' SVIDs; host B (DevID from CA 2) is
// refused. Forged attestations — a DevID certificate without its key, a replayed answer, an EK
// that did not activate the credential — are sent to the same serverd by agentd's own
// ServerClient, with evidence made by hw::TpmDevIdAgent in the test process.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

#include "agentd/sync/server_client.h"
#include "core/csr.h"
#include "core/tpm_devid.h"
#include "core/trust_bundle.h"
#include "core/wire/wire.h"
#include "hw/soft_key_store.h"
#include "hw/tpm_devid.h"
#include "tests/agentd/saved_agent_svid.h"
#include "tests/support/agentd_process.h"
#include "tests/support/serverd_process.h"
#include "tests/support/swtpm.h"
#include "transport/event_loop.h"

namespace sigil::agentd::testing {
namespace {

using sigil::testing::AgentdOptions;
using sigil::testing::AgentdProcess;
using sigil::testing::ProcessOutput;
using sigil::testing::ServerdOptions;
using sigil::testing::ServerdProcess;
using sigil::testing::SoftHsm;
using sigil::testing::Swtpm;
using sigil::testing::TempDir;
using sigil::testing::WaitUntil;

const TrustDomain kTd = *TrustDomain::Parse("example.org");
constexpr char kRefused[] = "tpm_devid attestation refused";

std::string ProvisionScript() {
  const char* script = std::getenv("SIGIL_PROVISION_DEVID");
  return script != nullptr ? script : "tools/provision-devid";
}

Status RunProvisionScript(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {ProvisionScript()};
  argv.insert(argv.end(), args.begin(), args.end());
  SIGIL_ASSIGN_OR_RETURN(sigil::testing::ProcessOutput out, sigil::testing::RunProcess(argv));
  if (out.exit_code != 0) return InternalError("provision-devid failed: " + out.err);
  return Status::Ok();
}

ProcessOutput RunTool(const std::vector<std::string>& argv) {
  auto out = sigil::testing::RunProcess(argv);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? *out : ProcessOutput{};
}

// The SHA-1 fingerprint of a PEM certificate as `openssl x509` computes it, in the lowercase
// hex without colons that SPIRE's tpm_devid agent IDs and selectors use.
std::string OpensslSha1Fingerprint(const std::filesystem::path& pem) {
  ProcessOutput out =
      RunTool({"openssl", "x509", "-in", pem.string(), "-noout", "-fingerprint", "-sha1"});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  const size_t equals = out.out.find('=');
  if (equals == std::string::npos) return "";
  std::string hex;
  for (char c : out.out.substr(equals + 1)) {
    if (std::isxdigit(static_cast<unsigned char>(c))) hex += static_cast<char>(std::tolower(c));
  }
  return hex;
}

// Whether one line of `logs` holds every one of `parts`.
bool HasLogLine(const std::string& logs, const std::vector<std::string>& parts) {
  std::istringstream lines(logs);
  std::string line;
  while (std::getline(lines, line)) {
    if (std::all_of(parts.begin(), parts.end(), [&](const std::string& part) {
          return line.find(part) != std::string::npos;
        })) {
      return true;
    }
  }
  return false;
}

class TpmDevIdProcessTest : public ::testing::Test {
 protected:
  // Everything that talks to a TPM through tpm2-tools runs here, before any test opens the
  // TPMs: a swtpm serves one client at a time.
  static void SetUpTestSuite() {
    auto hsm = SoftHsm::Create();
    ASSERT_TRUE(hsm.ok()) << hsm.status().ToString();
    hsm_ = std::move(*hsm).release();
    dir_ = new TempDir("sigil-devid-e2e");
    const TempDir& dir = *dir_;

    for (const char* tpm : {"tpm-a", "tpm-b"}) {
      Status made = Swtpm::ManufactureWithEkCertificates(dir / tpm, dir / "ek-ca");
      ASSERT_TRUE(made.ok()) << made.ToString();
    }
    auto a = Swtpm::Start(dir / "tpm-a", dir / "logs-a");
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    tpm_a_ = a->release();
    auto b = Swtpm::Start(dir / "tpm-b", dir / "logs-b");
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    tpm_b_ = b->release();

    for (const auto& [ca, cn] :
         {std::pair{"ca1", "Sigil Test DevID CA 1"}, std::pair{"ca2", "Sigil Test DevID CA 2"}}) {
      Status made = RunProvisionScript({"--make-ca", (dir / ca).string(), "--cn", cn});
      ASSERT_TRUE(made.ok()) << made.ToString();
    }
    struct Provision {
      Swtpm* tpm;
      const char* ca;
      const char* out;
      const char* cn;
    };
    // Host B also holds a DevID from the trusted CA: a second genuine TPM whose key the forged
    // attestations borrow from.
    for (const Provision& p : {Provision{tpm_a_, "ca1", "devid-a", "host-a.example.org"},
                               Provision{tpm_b_, "ca2", "devid-b", "host-b.example.org"},
                               Provision{tpm_b_, "ca1", "devid-b-ca1", "host-b.example.org"}}) {
      Status provisioned = RunProvisionScript(
          {"--tcti", p.tpm->tcti(), "--ca-cert", (dir / p.ca / "ca.crt").string(), "--ca-key",
           (dir / p.ca / "ca.key").string(), "--out", (dir / p.out).string(), "--cn", p.cn});
      ASSERT_TRUE(provisioned.ok()) << provisioned.ToString();
    }

    // Only CA 1 vouches for DevIDs; the swtpm EK CA vouches for both TPMs.
    std::string devid_cas = "      - " + (dir / "ca1" / "ca.crt").string() + "\n";
    std::string endorsement_cas;
    for (const auto& path : Swtpm::EkCaCertificates(dir / "ek-ca")) {
      endorsement_cas += "      - " + path.string() + "\n";
    }
    ServerdOptions options;
    options.top_level_yaml = "node_attestors:\n  tpm_devid:\n    devid_ca_path:\n" + devid_cas +
                             "    endorsement_ca_path:\n" + endorsement_cas;
    auto server = ServerdProcess::Create(*hsm_, "devid-e2e", options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server).release();
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    auto bundle = server_->Cli({"bundle", "show"});
    ASSERT_TRUE(bundle.ok() && bundle->exit_code == 0);
    sigil::testing::WriteFile(dir / "bundle.pem", bundle->out);
  }

  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      server_->Stop();
      EXPECT_EQ(server_->logs().find("Sanitizer"), std::string::npos) << server_->logs();
    }
    delete server_;
    delete tpm_a_;
    delete tpm_b_;
    delete dir_;
    delete hsm_;
  }

  void TearDown() override {
    if (agent_) {
      agent_->Stop();
      EXPECT_EQ(agent_->logs().find("Sanitizer"), std::string::npos) << agent_->logs();
      if (HasFailure()) std::cerr << "agentd logs:\n" << agent_->logs();
    }
    if (HasFailure() && server_ != nullptr) std::cerr << "serverd logs:\n" << server_->logs();
  }

  static ProcessOutput Cli(std::vector<std::string> args) {
    auto out = server_->Cli(std::move(args));
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : ProcessOutput{};
  }

  static void CreateEntry(std::vector<std::string> args) {
    args.insert(args.begin(), {"entry", "create"});
    ProcessOutput out = Cli(args);
    EXPECT_EQ(out.exit_code, 0) << out.err;
  }

  // agentd with its tpm_devid section pointing at `tpm` and the DevID files in `devid_dir`.
  static AgentdOptions DevIdAgentOptions(const Swtpm& tpm, const char* devid_dir) {
    const std::filesystem::path devid = *dir_ / devid_dir;
    AgentdOptions options;
    options.server_port = server_->agent_port();
    options.trust_bundle_path = *dir_ / "bundle.pem";
    // The same keys an operator writes; tcti quoted for its ':' and ','.
    const std::vector<std::pair<std::string, std::string>> keys = {
        {"tcti", "\"" + tpm.tcti() + "\""},
        {"devid_cert_path", (devid / "devid.crt.pem").string()},
        {"devid_pub_path", (devid / "devid.pub").string()},
        {"devid_priv_path", (devid / "devid.priv").string()}};
    options.top_level_yaml = "tpm_devid:\n";
    for (const auto& [key, value] : keys)
      options.top_level_yaml += "  " + key + ": " + value + "\n";
    return options;
  }

  static std::string AgentIdOf(const char* devid_dir) {
    return "spiffe://example.org/spire/agent/tpm_devid/" +
           OpensslSha1Fingerprint(*dir_ / devid_dir / "devid.crt.pem");
  }

  static std::unique_ptr<hw::TpmDevIdAgent> OpenTpm(const Swtpm& tpm, const char* devid_dir) {
    auto agent = hw::TpmDevIdAgent::Open(hw::TpmDevIdConfig::InDir(tpm.tcti(), *dir_ / devid_dir));
    EXPECT_TRUE(agent.ok()) << agent.status().ToString();
    return agent.ok() ? std::move(*agent) : nullptr;
  }

  // Expects serverd to have refused with PermissionDenied naming `cause`, to the client and in
  // its log.
  template <typename T>
  static void ExpectRefused(const Result<T>& answer, const std::string& cause) {
    ASSERT_FALSE(answer.ok()) << "serverd accepted, expected a refusal naming: " << cause;
    EXPECT_EQ(answer.status().code(), Code::kPermissionDenied) << answer.status().ToString();
    EXPECT_NE(answer.status().message().find(cause), std::string::npos)
        << answer.status().ToString();
    EXPECT_TRUE(WaitUntil(
        [&] {
          return HasLogLine(server_->logs(), {kRefused, cause});
        },
        std::chrono::seconds(5)))
        << "no log line naming: " << cause << "\n"
        << server_->logs();
  }

  static inline SoftHsm* hsm_ = nullptr;
  static inline TempDir* dir_ = nullptr;
  static inline Swtpm* tpm_a_ = nullptr;
  static inline Swtpm* tpm_b_ = nullptr;
  static inline ServerdProcess* server_ = nullptr;
  std::unique_ptr<AgentdProcess> agent_;
};

// A client of serverd's agent API as a forger would use it: agentd's own ServerClient, sending
// AttestationRequest messages the test composes.
class AttestationClient {
 public:
  AttestationClient(int port, const std::filesystem::path& bundle_pem) {
    loop_.Start();
    ServerClient::Options options;
    options.endpoint = {.host = "127.0.0.1", .port = port};
    options.trust_domain = kTd;
    options.timeout = std::chrono::seconds(20);
    client_ = std::make_unique<ServerClient>(options, &loop_.loop());
    auto bundle = X509BundleFromPem(kTd, sigil::testing::ReadFile(bundle_pem));
    EXPECT_TRUE(bundle.ok()) << bundle.status().ToString();
    if (bundle.ok()) {
      EXPECT_TRUE(client_->SetBundle(*bundle).ok());
    }
  }

  Result<AttestAnswer> SendEvidence(const TpmDevIdEvidence& evidence) {
    flatbuffers::FlatBufferBuilder builder(4096);
    auto data = wire::TpmDevIdEvidenceToWire(builder, evidence);
    return Send(builder, wire::AttestationData::TpmDevIdAttestation, data.Union());
  }

  Result<AttestAnswer> SendAnswer(const TpmDevIdAnswer& answer) {
    flatbuffers::FlatBufferBuilder builder(1024);
    auto data = wire::TpmDevIdAnswerToWire(builder, answer);
    return Send(builder, wire::AttestationData::TpmDevIdChallengeAnswer, data.Union());
  }

  // The evidence's challenge; a failed test when serverd answers anything else.
  TpmDevIdChallenge ChallengeFor(const TpmDevIdEvidence& evidence) {
    auto answer = SendEvidence(evidence);
    EXPECT_TRUE(answer.ok()) << answer.status().ToString();
    if (!answer.ok()) return {};
    auto* challenge = std::get_if<TpmDevIdChallenge>(&*answer);
    EXPECT_NE(challenge, nullptr) << "serverd answered evidence without a challenge";
    return challenge != nullptr ? *challenge : TpmDevIdChallenge{};
  }

 private:
  // Every attestation message carries the CSR of the agent SVID it asks for.
  Result<AttestAnswer> Send(flatbuffers::FlatBufferBuilder& builder, wire::AttestationData type,
                            flatbuffers::Offset<void> data) {
    SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, hw::GenerateSoftKey(KeyType::kEcP256));
    SIGIL_ASSIGN_OR_RETURN(Bytes csr, MakeCsr(key.get()));
    auto csr_vector = builder.CreateVector(csr);
    return client_->Attest(wire::FinishMessage(
        builder, wire::CreateAttestationRequest(builder, type, data, csr_vector)));
  }

  transport::LoopThread loop_;
  std::unique_ptr<ServerClient> client_;
};

TEST_F(TpmDevIdProcessTest, HostAAttestsWithItsDevIdAndItsWorkloadsGetSvidsThatVerify) {
  const std::string agent_id = AgentIdOf("devid-a");
  const std::string uid = "unix:uid:" + std::to_string(::getuid());
  CreateEntry(
      {"-parentID", agent_id, "-spiffeID", "spiffe://example.org/host-a/web", "-selector", uid});
  // Node aliases select hosts by their DevID's subject; only host A's applies to host A.
  CreateEntry({"-node", "-spiffeID", "spiffe://example.org/node/host-a", "-selector",
               "tpm_devid:subject:cn:host-a.example.org"});
  CreateEntry({"-parentID", "spiffe://example.org/node/host-a", "-spiffeID",
               "spiffe://example.org/by-cn/web", "-selector", uid});
  CreateEntry({"-node", "-spiffeID", "spiffe://example.org/node/host-b", "-selector",
               "tpm_devid:subject:cn:host-b.example.org"});
  CreateEntry({"-parentID", "spiffe://example.org/node/host-b", "-spiffeID",
               "spiffe://example.org/by-cn/not-host-a", "-selector", uid});

  auto agent = AgentdProcess::Create(DevIdAgentOptions(*tpm_a_, "devid-a"));
  ASSERT_TRUE(agent.ok()) << agent.status().ToString();
  agent_ = std::move(*agent);
  Status started = agent_->Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  EXPECT_TRUE(HasLogLine(agent_->logs(), {"attested to serverd", agent_id, "tpm_devid"}))
      << agent_->logs();

  ProcessOutput list = Cli({"agent", "list"});
  EXPECT_NE(list.out.find(agent_id), std::string::npos) << list.out;
  ProcessOutput show = Cli({"agent", "show", "-spiffeID", agent_id});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_TRUE(HasLogLine(show.out, {"Attestation type", "tpm_devid"})) << show.out;
  for (const std::string& selector :
       {std::string("tpm_devid:subject:cn:host-a.example.org"),
        std::string("tpm_devid:issuer:cn:Sigil Test DevID CA 1"),
        "tpm_devid:fingerprint:" + OpensslSha1Fingerprint(*dir_ / "ca1" / "ca.crt")}) {
    EXPECT_TRUE(HasLogLine(show.out, {"Selectors", selector})) << show.out;
  }

  // The workload's SVIDs through agentd's Workload API, as `agentd api fetch x509 -write`.
  const std::filesystem::path svids = *dir_ / "host-a-svids";
  std::filesystem::create_directories(svids);
  ProcessOutput fetched;
  const bool both = WaitUntil(
      [&] {
        auto out = agent_->Cli({"api", "fetch", "x509", "-write", svids.string()});
        if (!out.ok()) return false;
        fetched = *out;
        return fetched.out.find("spiffe://example.org/host-a/web") != std::string::npos &&
               fetched.out.find("spiffe://example.org/by-cn/web") != std::string::npos;
      },
      std::chrono::seconds(15));
  ASSERT_TRUE(both) << fetched.out << fetched.err;
  EXPECT_EQ(fetched.out.find("not-host-a"), std::string::npos) << fetched.out;

  std::set<std::string> verified_ids;
  for (int i = 0; i < 2; ++i) {
    const std::string svid = (svids / ("svid." + std::to_string(i) + ".pem")).string();
    ProcessOutput verify = RunTool({"openssl", "verify", "-CAfile", (*dir_ / "bundle.pem").string(),
                                    "-untrusted", svid, svid});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    ProcessOutput san =
        RunTool({"openssl", "x509", "-in", svid, "-noout", "-ext", "subjectAltName"});
    for (const char* id : {"spiffe://example.org/host-a/web", "spiffe://example.org/by-cn/web"}) {
      if (san.out.find(std::string("URI:") + id) != std::string::npos) verified_ids.insert(id);
    }
  }
  EXPECT_EQ(verified_ids.size(), 2u) << "SVIDs written: " << fetched.out;
}

TEST_F(TpmDevIdProcessTest, HostBWithDevIdFromAnotherCaIsRefused) {
  auto agent = AgentdProcess::Create(DevIdAgentOptions(*tpm_b_, "devid-b"));
  ASSERT_TRUE(agent.ok()) << agent.status().ToString();
  agent_ = std::move(*agent);
  Status started = agent_->Start();
  ASSERT_FALSE(started.ok()) << "agentd with an untrusted DevID started:\n" << agent_->logs();
  EXPECT_NE(started.message().find("agentd exited at start"), std::string::npos)
      << started.ToString();
  const int exit_code = agent_->Stop();
  EXPECT_TRUE(exit_code > 0 && exit_code < 128) << "agentd's exit code: " << exit_code;
  const std::string cause = "the DevID certificate does not chain to a configured CA";
  // The line names the host and the CA its DevID came from, for the operator to act on.
  EXPECT_TRUE(HasLogLine(
      server_->logs(),
      {kRefused, cause, "subject CN=host-b.example.org, issuer CN=Sigil Test DevID CA 2"}))
      << server_->logs();
  EXPECT_NE(agent_->logs().find(cause), std::string::npos) << agent_->logs();
  ProcessOutput list = Cli({"agent", "list"});
  EXPECT_EQ(list.out.find(AgentIdOf("devid-b")), std::string::npos) << list.out;
}

// A saved agent key that is not its SVID's (an earlier version killed between its two renames)
// is named, and a host with a DevID attests again on its own rather than stopping.
TEST_F(TpmDevIdProcessTest, HostAWithAMismatchedSavedKeyAttestsAgainWithItsDevId) {
  const std::string agent_id = AgentIdOf("devid-a");
  auto agent = AgentdProcess::Create(DevIdAgentOptions(*tpm_a_, "devid-a"));
  ASSERT_TRUE(agent.ok()) << agent.status().ToString();
  agent_ = std::move(*agent);
  ASSERT_TRUE(agent_->Start().ok()) << agent_->logs();
  agent_->Stop();
  WriteOldLayout(agent_->data_dir(), /*mismatched=*/true);

  Status started = agent_->Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  const std::string logs = agent_->logs();
  EXPECT_TRUE(HasLogLine(logs, {"does not match the saved agent SVID; attesting again", "agent_svid.key"})) << logs;
  size_t attested = 0;
  for (size_t at = logs.find("attested to serverd"); at != std::string::npos;
       at = logs.find("attested to serverd", at + 1)) {
    ++attested;
  }
  EXPECT_EQ(attested, 2u) << "one attestation at each start";
  auto fetched = agent_->Cli({"healthcheck"});
  ASSERT_TRUE(fetched.ok());
  EXPECT_EQ(fetched->exit_code, 0) << fetched->err;
  EXPECT_NE(Cli({"agent", "list"}).out.find(agent_id), std::string::npos);
}

TEST_F(TpmDevIdProcessTest, DevIdCertificateWithoutItsKeyIsRefused) {
  auto host_a = OpenTpm(*tpm_a_, "devid-a");
  auto host_b = OpenTpm(*tpm_b_, "devid-b-ca1");
  ASSERT_TRUE(host_a && host_b);
  AttestationClient client(server_->agent_port(), *dir_ / "bundle.pem");
  auto evidence_a = host_a->MakeEvidence();
  auto evidence_b = host_b->MakeEvidence();
  ASSERT_TRUE(evidence_a.ok() && evidence_b.ok());

  // Host B presents host A's certificate and public key: B's TPM certifies only its own key.
  TpmDevIdEvidence copied = *evidence_b;
  copied.devid_chain_der = evidence_a->devid_chain_der;
  copied.devid_public = evidence_a->devid_public;
  ExpectRefused(client.SendEvidence(copied),
                "certify_info certifies another key than devid_public");

  // Host A's certificate beside host B's DevID key.
  TpmDevIdEvidence mismatched = *evidence_b;
  mismatched.devid_chain_der = evidence_a->devid_chain_der;
  ExpectRefused(client.SendEvidence(mismatched),
                "the DevID certificate is not the certificate of devid_public's key");

  // Host A's genuine evidence, answered with a nonce signature by host B's DevID key.
  TpmDevIdChallenge challenge_a = client.ChallengeFor(*evidence_a);
  TpmDevIdChallenge challenge_b = client.ChallengeFor(*evidence_b);
  auto answer_a = host_a->AnswerChallenge(challenge_a);
  auto answer_b = host_b->AnswerChallenge(challenge_b);
  ASSERT_TRUE(answer_a.ok()) << answer_a.status().ToString();
  ASSERT_TRUE(answer_b.ok()) << answer_b.status().ToString();
  TpmDevIdAnswer forged = *answer_a;
  forged.nonce_signature = answer_b->nonce_signature;
  ExpectRefused(client.SendAnswer(forged), "the nonce signature is not the DevID key's");
}

TEST_F(TpmDevIdProcessTest, ReplayedChallengeAnswerIsRefused) {
  auto host_a = OpenTpm(*tpm_a_, "devid-a");
  ASSERT_TRUE(host_a);
  AttestationClient client(server_->agent_port(), *dir_ / "bundle.pem");
  auto evidence = host_a->MakeEvidence();
  ASSERT_TRUE(evidence.ok()) << evidence.status().ToString();
  auto answer = host_a->AnswerChallenge(client.ChallengeFor(*evidence));
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();

  auto first = client.SendAnswer(*answer);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto* svid = std::get_if<AgentSvidAnswer>(&*first);
  ASSERT_NE(svid, nullptr) << "serverd answered a challenge answer with another challenge";
  EXPECT_EQ(svid->agent_id.str(), AgentIdOf("devid-a"));
  ExpectRefused(client.SendAnswer(*answer), "no pending challenge with this session id");
}

TEST_F(TpmDevIdProcessTest, EkThatDidNotActivateTheCredentialIsRefused) {
  auto host_a = OpenTpm(*tpm_a_, "devid-a");
  auto host_b = OpenTpm(*tpm_b_, "devid-b-ca1");
  ASSERT_TRUE(host_a && host_b);
  AttestationClient client(server_->agent_port(), *dir_ / "bundle.pem");
  auto evidence_a = host_a->MakeEvidence();
  auto evidence_b = host_b->MakeEvidence();
  ASSERT_TRUE(evidence_a.ok() && evidence_b.ok());

  // Host A claims host B's genuine, certified EK. The credential is then made for B's EK and
  // A's AK, which no single TPM holds: A's TPM cannot activate it.
  TpmDevIdEvidence other_ek = *evidence_a;
  other_ek.ek_public = evidence_b->ek_public;
  other_ek.ek_certificate = evidence_b->ek_certificate;
  TpmDevIdChallenge claimed = client.ChallengeFor(other_ek);
  auto activation = host_a->AnswerChallenge(claimed);
  EXPECT_FALSE(activation.ok()) << "host A's TPM activated a credential made for host B's EK";

  // The forger's best answer: the nonce signed by A's DevID key, and the secret of a credential
  // A's TPM can activate (made for A's own EK, in another session).
  TpmDevIdChallenge honest = client.ChallengeFor(*evidence_a);
  TpmDevIdChallenge spliced = honest;
  spliced.session_id = claimed.session_id;
  spliced.nonce = claimed.nonce;
  auto answer = host_a->AnswerChallenge(spliced);
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  ExpectRefused(client.SendAnswer(*answer), "the activated credential is wrong");
}

}  // namespace
}  // namespace sigil::agentd::testing
