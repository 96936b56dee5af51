// TPM DevID attestation end to end on real swtpm instances: the agent side (hw/tpm_devid.h)
// against the server side (serverd/attestor/tpm_devid_attestor.h) in-process, with DevIDs provisioned by
// tools/provision-devid. Host A holds a DevID from CA1 (trusted); host B holds one from CA2
// (not trusted) and one from CA1 (and P-384 and RSA ones); host C's TPM has no EK certificate;
// host D's DevID key and endorsement hierarchy have auth values.
#include <gtest/gtest.h>

#include <openssl/pem.h>

#include "core/base64url.h"
#include "core/openssl_util.h"
#include "core/trust_bundle.h"
#include "core/wire/wire.h"
#include "hw/key_store.h"
#include "hw/tpm_devid.h"
#include "serverd/attestor/tpm_devid_attestor.h"
#include "tests/support/process.h"
#include "tests/support/swtpm.h"

namespace sigil {
namespace {

using hw::TpmDevIdAgent;
using hw::TpmDevIdConfig;
using serverd::TpmDevIdAttestor;
using serverd::TpmDevIdAttestorConfig;
using testing::Swtpm;
using testing::TempDir;

std::string ProvisionScript() {
  const char* script = std::getenv("SIGIL_PROVISION_DEVID");
  return script != nullptr ? script : "tools/provision-devid";
}

Status RunScript(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {ProvisionScript()};
  argv.insert(argv.end(), args.begin(), args.end());
  SIGIL_ASSIGN_OR_RETURN(testing::ProcessOutput out, testing::RunProcess(argv));
  if (out.exit_code != 0) return Status(Code::kInternal, "provision-devid failed: " + out.err);
  return Status::Ok();
}

std::string Sha1OfPemFile(const std::filesystem::path& path) {
  auto certs = CertsFromPem(testing::ReadFile(path));
  EXPECT_TRUE(certs.ok()) << certs.status().ToString();
  unsigned char* der = nullptr;
  const int size = i2d_X509(certs->front().get(), &der);
  unsigned char digest[20];
  unsigned int digest_size = 0;
  EVP_Digest(der, static_cast<size_t>(size), digest, &digest_size, EVP_sha1(), nullptr);
  OPENSSL_free(der);
  return HexEncode(std::span<const uint8_t>(digest, digest_size));
}

bool HasSelector(const serverd::TpmDevIdIdentity& identity, const std::string& text) {
  for (const Selector& selector : identity.selectors) {
    if (selector.str() == text) return true;
  }
  return false;
}

// Each value makes the trip the agent API gives it: into its wire table, inside a verified
// envelope, and back.
TpmDevIdEvidence OverTheWire(const TpmDevIdEvidence& evidence) {
  flatbuffers::FlatBufferBuilder builder;
  auto data = wire::TpmDevIdEvidenceToWire(builder, evidence);
  const Bytes bytes = wire::FinishMessage(
      builder, wire::CreateAttestationRequest(builder, wire::AttestationData::TpmDevIdAttestation,
                                              data.Union()));
  auto request = wire::VerifiedMessage<wire::AttestationRequest>(bytes);
  EXPECT_TRUE(request.ok()) << request.status().ToString();
  return wire::TpmDevIdEvidenceFromWire(*(*request)->data_as_TpmDevIdAttestation());
}

TpmDevIdChallenge OverTheWire(const TpmDevIdChallenge& challenge) {
  flatbuffers::FlatBufferBuilder builder;
  const Bytes bytes =
      wire::FinishMessage(builder, wire::TpmDevIdChallengeToWire(builder, challenge));
  auto message = wire::VerifiedMessage<wire::AttestationChallenge>(bytes);
  EXPECT_TRUE(message.ok()) << message.status().ToString();
  return wire::TpmDevIdChallengeFromWire(**message);
}

TpmDevIdAnswer OverTheWire(const TpmDevIdAnswer& answer) {
  flatbuffers::FlatBufferBuilder builder;
  auto data = wire::TpmDevIdAnswerToWire(builder, answer);
  const Bytes bytes = wire::FinishMessage(
      builder, wire::CreateAttestationRequest(
                   builder, wire::AttestationData::TpmDevIdChallengeAnswer, data.Union()));
  auto request = wire::VerifiedMessage<wire::AttestationRequest>(bytes);
  EXPECT_TRUE(request.ok()) << request.status().ToString();
  return wire::TpmDevIdAnswerFromWire(*(*request)->data_as_TpmDevIdChallengeAnswer());
}

// A refusal with `code` whose message names the cause in `words`.
template <typename T>
void ExpectRefused(const Result<T>& result, Code code, const std::string& words) {
  ASSERT_FALSE(result.ok()) << "accepted, expected a refusal naming: " << words;
  EXPECT_EQ(result.status().code(), code) << result.status().ToString();
  EXPECT_NE(result.status().ToString().find(words), std::string::npos)
      << result.status().ToString();
}

class TpmDevIdTest : public ::testing::Test {
 protected:
  // Everything that talks to a TPM through tpm2-tools runs here, before any test opens the
  // TPMs: a swtpm serves one client at a time.
  static void SetUpTestSuite() {
    dir_ = new TempDir("sigil-tpm-devid");
    const TempDir& dir = *dir_;
    ASSERT_TRUE(Swtpm::ManufactureWithEkCertificates(dir / "tpm-a", dir / "ek-ca").ok());
    ASSERT_TRUE(Swtpm::ManufactureWithEkCertificates(dir / "tpm-b", dir / "ek-ca").ok());
    ASSERT_TRUE(Swtpm::ManufactureWithEkCertificates(dir / "tpm-d", dir / "ek-ca").ok());
    auto a = Swtpm::Start(dir / "tpm-a", dir / "logs-a");
    auto b = Swtpm::Start(dir / "tpm-b", dir / "logs-b");
    auto c = Swtpm::Start(dir / "tpm-c", dir / "logs-c");  // never manufactured: no EK certificate
    auto d = Swtpm::Start(dir / "tpm-d", dir / "logs-d");  // auth values on the DevID and the EH
    ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok());
    tpm_a_ = a->release();
    tpm_b_ = b->release();
    tpm_c_ = c->release();
    tpm_d_ = d->release();

    testing::WriteFile(dir / "endorsement-auth", "endorsement-secret\n");
    testing::WriteFile(dir / "devid-auth", "devid-secret\n");
    testing::ProcessOptions tools_env;
    tools_env.env["TPM2TOOLS_TCTI"] = tpm_d_->tcti();
    auto changed =
        testing::RunProcess({"tpm2_changeauth", "-c", "e", "endorsement-secret"}, tools_env);
    ASSERT_TRUE(changed.ok() && changed->exit_code == 0) << (changed.ok() ? changed->err : "");

    Status made = RunScript({"--make-ca", (dir / "ca1").string(), "--cn", "Sigil Test DevID CA 1"});
    ASSERT_TRUE(made.ok()) << made.ToString();
    made = RunScript({"--make-ca", (dir / "ca2").string(), "--cn", "Sigil Test DevID CA 2"});
    ASSERT_TRUE(made.ok()) << made.ToString();
    struct Provision {
      Swtpm* tpm;
      const char* ca;
      const char* out;
      const char* cn;
      const char* persist = nullptr;
      const char* key_type = nullptr;
      bool devid_auth = false;
    };
    for (const Provision& p :
         {Provision{tpm_a_, "ca1", "devid-a", "host-a.example.org"},
          Provision{tpm_b_, "ca2", "devid-b", "host-b.example.org"},
          Provision{tpm_b_, "ca1", "devid-b-ca1", "host-b.example.org"},
          Provision{tpm_c_, "ca1", "devid-c", "host-c.example.org"},
          Provision{tpm_c_, "ca1", "devid-c-persistent", "host-c-persistent", "0x81000100"},
          Provision{tpm_b_, "ca1", "devid-b-p384", "host-b-p384", nullptr, "ecc384"},
          Provision{tpm_b_, "ca1", "devid-b-rsa", "host-b-rsa", nullptr, "rsa2048"},
          Provision{tpm_d_, "ca1", "devid-d", "host-d", nullptr, nullptr, true}}) {
      const std::filesystem::path ca = dir / p.ca;
      std::vector<std::string> args = {"--tcti",    p.tpm->tcti(),
                                       "--ca-cert", (ca / "ca.crt").string(),
                                       "--ca-key",  (ca / "ca.key").string(),
                                       "--out",     (dir / p.out).string(),
                                       "--cn",      p.cn};
      if (p.persist != nullptr) args.insert(args.end(), {"--persist", p.persist});
      if (p.key_type != nullptr) args.insert(args.end(), {"--key-type", p.key_type});
      if (p.devid_auth)
        args.insert(args.end(), {"--devid-auth-file", (dir / "devid-auth").string()});
      Status provisioned = RunScript(args);
      ASSERT_TRUE(provisioned.ok()) << provisioned.ToString();
    }
  }

  static void TearDownTestSuite() {
    delete tpm_a_;
    delete tpm_b_;
    delete tpm_c_;
    delete tpm_d_;
    delete dir_;
  }

  static std::unique_ptr<TpmDevIdAgent> OpenAgent(Swtpm* tpm, const char* devid_dir) {
    auto agent = TpmDevIdAgent::Open(TpmDevIdConfig::InDir(tpm->tcti(), *dir_ / devid_dir));
    EXPECT_TRUE(agent.ok()) << agent.status().ToString();
    return agent.ok() ? std::move(*agent) : nullptr;
  }

  static TpmDevIdAttestorConfig ServerConfig() {
    TpmDevIdAttestorConfig config;
    config.devid_ca_paths = {*dir_ / "ca1" / "ca.crt"};
    config.endorsement_ca_paths = Swtpm::EkCaCertificates(*dir_ / "ek-ca");
    return config;
  }

  static std::unique_ptr<TpmDevIdAttestor> MakeServer(
      const TpmDevIdAttestorConfig& config = ServerConfig()) {
    auto server = TpmDevIdAttestor::Create(config);
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    return server.ok() ? std::move(*server) : nullptr;
  }

  static inline TempDir* dir_ = nullptr;
  static inline Swtpm* tpm_a_ = nullptr;
  static inline Swtpm* tpm_b_ = nullptr;
  static inline Swtpm* tpm_c_ = nullptr;
  static inline Swtpm* tpm_d_ = nullptr;
};

TEST_F(TpmDevIdTest, HostWithDevIdFromTrustedCaAttests) {
  auto agent = OpenAgent(tpm_a_, "devid-a");
  auto server = MakeServer();
  ASSERT_TRUE(agent && server);

  auto evidence = agent->MakeEvidence();
  ASSERT_TRUE(evidence.ok()) << evidence.status().ToString();
  EXPECT_FALSE(evidence->ek_certificate.empty());
  auto challenge = server->Begin(OverTheWire(*evidence));
  ASSERT_TRUE(challenge.ok()) << challenge.status().ToString();
  auto answer = agent->AnswerChallenge(OverTheWire(*challenge));
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  auto identity = server->Finish(OverTheWire(*answer));
  ASSERT_TRUE(identity.ok()) << identity.status().ToString();

  const std::string fingerprint = Sha1OfPemFile(*dir_ / "devid-a" / "devid.crt.pem");
  EXPECT_EQ(identity->fingerprint, fingerprint);
  EXPECT_EQ(identity->agent_path, "tpm_devid/" + fingerprint);
  EXPECT_TRUE(HasSelector(*identity, "tpm_devid:subject:cn:host-a.example.org"));
  EXPECT_TRUE(HasSelector(*identity, "tpm_devid:issuer:cn:Sigil Test DevID CA 1"));
  EXPECT_TRUE(
      HasSelector(*identity, "tpm_devid:fingerprint:" + Sha1OfPemFile(*dir_ / "ca1" / "ca.crt")));
  EXPECT_EQ(identity->selectors.size(), 3u);
  EXPECT_EQ(server->pending_sessions(), 0u);
}

TEST_F(TpmDevIdTest, DevIdKeysOfEveryTypeAttest) {
  auto server = MakeServer();
  ASSERT_TRUE(server);
  for (const char* devid : {"devid-b-p384", "devid-b-rsa"}) {
    SCOPED_TRACE(devid);
    auto agent = OpenAgent(tpm_b_, devid);
    ASSERT_TRUE(agent);
    auto evidence = agent->MakeEvidence();
    ASSERT_TRUE(evidence.ok()) << evidence.status().ToString();
    auto challenge = server->Begin(*evidence);
    ASSERT_TRUE(challenge.ok()) << challenge.status().ToString();
    auto answer = agent->AnswerChallenge(*challenge);
    ASSERT_TRUE(answer.ok()) << answer.status().ToString();
    auto identity = server->Finish(*answer);
    ASSERT_TRUE(identity.ok()) << identity.status().ToString();
    EXPECT_EQ(identity->agent_path, "tpm_devid/" + Sha1OfPemFile(*dir_ / devid / "devid.crt.pem"));
  }
}

TEST_F(TpmDevIdTest, AuthValuesOfTheDevIdKeyAndTheEndorsementHierarchy) {
  auto server = MakeServer();
  ASSERT_TRUE(server);
  TpmDevIdConfig config = TpmDevIdConfig::InDir(tpm_d_->tcti(), *dir_ / "devid-d");
  config.devid_auth_file = *dir_ / "devid-auth";
  config.endorsement_auth_file = *dir_ / "endorsement-auth";
  {
    auto agent = TpmDevIdAgent::Open(config);
    ASSERT_TRUE(agent.ok()) << agent.status().ToString();
    auto evidence = (*agent)->MakeEvidence();
    ASSERT_TRUE(evidence.ok()) << evidence.status().ToString();
    auto challenge = server->Begin(*evidence);
    ASSERT_TRUE(challenge.ok()) << challenge.status().ToString();
    auto answer = (*agent)->AnswerChallenge(*challenge);
    ASSERT_TRUE(answer.ok()) << answer.status().ToString();
    EXPECT_TRUE(server->Finish(*answer).ok());
  }
  // Each refusal below costs one dictionary-attack strike on this TPM: keep them few.
  TpmDevIdConfig no_devid_auth = config;
  no_devid_auth.devid_auth_file.clear();
  auto agent = TpmDevIdAgent::Open(no_devid_auth);
  ASSERT_TRUE(agent.ok()) << agent.status().ToString();
  ExpectRefused((*agent)->MakeEvidence(), Code::kPermissionDenied, "certifying the DevID key");

  TpmDevIdConfig no_endorsement_auth = config;
  no_endorsement_auth.endorsement_auth_file.clear();
  agent = TpmDevIdAgent::Open(no_endorsement_auth);
  ASSERT_TRUE(agent.ok()) << agent.status().ToString();
  ExpectRefused((*agent)->MakeEvidence(), Code::kPermissionDenied, "creating the attestation key");
}

TEST_F(TpmDevIdTest, IssuingEndorsementCaAloneIsEnoughTrust) {
  auto agent = OpenAgent(tpm_a_, "devid-a");
  TpmDevIdAttestorConfig config = ServerConfig();
  config.endorsement_ca_paths = {*dir_ / "ek-ca" / "issuercert.pem"};
  auto server = MakeServer(config);
  ASSERT_TRUE(agent && server);
  auto evidence = agent->MakeEvidence();
  ASSERT_TRUE(evidence.ok()) << evidence.status().ToString();
  auto challenge = server->Begin(*evidence);
  ASSERT_TRUE(challenge.ok()) << challenge.status().ToString();
}

TEST_F(TpmDevIdTest, SharesTheTpmWithTheKeyStore) {
  TempDir keys("sigil-tpm-devid-keys");
  auto store = hw::OpenKeyStore("tpm:" + tpm_a_->tcti() + "?data-dir=" + (keys / "store").string());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::vector<std::shared_ptr<Signer>> signers;
  for (const char* label : {"one", "two", "three"}) {
    auto signer = (*store)->CreateKey(label, KeyType::kEcP256);
    ASSERT_TRUE(signer.ok()) << signer.status().ToString();
    signers.push_back(*signer);
  }
  auto sign_all = [&] {
    for (const auto& signer : signers) {
      auto signature =
          signer->SignMessage(SignatureScheme::kES256, AsBytes("between attestations"));
      ASSERT_TRUE(signature.ok()) << signature.status().ToString();
    }
  };
  sign_all();
  auto agent = OpenAgent(tpm_a_, "devid-a");
  auto server = MakeServer();
  ASSERT_TRUE(agent && server);
  auto evidence = agent->MakeEvidence();
  ASSERT_TRUE(evidence.ok()) << evidence.status().ToString();
  sign_all();
  auto challenge = server->Begin(*evidence);
  ASSERT_TRUE(challenge.ok()) << challenge.status().ToString();
  auto answer = agent->AnswerChallenge(*challenge);
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  sign_all();
  EXPECT_TRUE(server->Finish(*answer).ok());
}

TEST_F(TpmDevIdTest, DevIdFromAnotherCaIsRefused) {
  auto agent = OpenAgent(tpm_b_, "devid-b");
  auto server = MakeServer();
  ASSERT_TRUE(agent && server);
  auto evidence = agent->MakeEvidence();
  ASSERT_TRUE(evidence.ok()) << evidence.status().ToString();
  auto challenge = server->Begin(*evidence);
  ExpectRefused(challenge, Code::kPermissionDenied,
                "the DevID certificate does not chain to a configured CA");
}

TEST_F(TpmDevIdTest, DevIdCertificateWithoutItsKeyIsRefused) {
  auto agent_a = OpenAgent(tpm_a_, "devid-a");
  auto agent_b = OpenAgent(tpm_b_, "devid-b-ca1");
  auto server = MakeServer();
  ASSERT_TRUE(agent_a && agent_b && server);

  // Host A presents host B's certificate and key description, but its TPM can only certify its
  // own DevID key.
  auto evidence_a = agent_a->MakeEvidence();
  auto evidence_b = agent_b->MakeEvidence();
  ASSERT_TRUE(evidence_a.ok() && evidence_b.ok());
  TpmDevIdEvidence borrowed = *evidence_a;
  borrowed.devid_chain_der = evidence_b->devid_chain_der;
  borrowed.devid_public = evidence_b->devid_public;
  ExpectRefused(server->Begin(borrowed), Code::kPermissionDenied,
                "certifies another key than devid_public");

  // A nonce signature from another TPM's DevID key.
  auto challenge_a = server->Begin(*evidence_a);
  auto challenge_b = server->Begin(*evidence_b);
  ASSERT_TRUE(challenge_a.ok() && challenge_b.ok());
  auto answer_a = agent_a->AnswerChallenge(*challenge_a);
  auto answer_b = agent_b->AnswerChallenge(*challenge_b);
  ASSERT_TRUE(answer_a.ok() && answer_b.ok());
  TpmDevIdAnswer forged = *answer_a;
  forged.nonce_signature = answer_b->nonce_signature;
  ExpectRefused(server->Finish(forged), Code::kPermissionDenied,
                "the nonce signature is not the DevID key's");
  EXPECT_TRUE(server->Finish(*answer_b).ok());
}

TEST_F(TpmDevIdTest, ReplayedAnswerIsRefused) {
  auto agent = OpenAgent(tpm_a_, "devid-a");
  auto server = MakeServer();
  ASSERT_TRUE(agent && server);
  auto evidence = agent->MakeEvidence();
  ASSERT_TRUE(evidence.ok()) << evidence.status().ToString();
  auto challenge = server->Begin(*evidence);
  ASSERT_TRUE(challenge.ok()) << challenge.status().ToString();
  auto answer = agent->AnswerChallenge(*challenge);
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  ASSERT_TRUE(server->Finish(*answer).ok());
  ExpectRefused(server->Finish(*answer), Code::kPermissionDenied,
                "no pending challenge with this session id");
}

TEST_F(TpmDevIdTest, EkThatDidNotActivateTheCredentialIsRefused) {
  auto agent_a = OpenAgent(tpm_a_, "devid-a");
  auto agent_b = OpenAgent(tpm_b_, "devid-b-ca1");
  auto server = MakeServer();
  ASSERT_TRUE(agent_a && agent_b && server);
  auto evidence_a = agent_a->MakeEvidence();
  auto evidence_b = agent_b->MakeEvidence();
  ASSERT_TRUE(evidence_a.ok() && evidence_b.ok());

  // Host A claims host B's (genuine, certified) EK: the credential is made for B's EK and A's
  // AK, which no single TPM holds, so A's TPM cannot activate it.
  TpmDevIdEvidence other_ek = *evidence_a;
  other_ek.ek_public = evidence_b->ek_public;
  other_ek.ek_certificate = evidence_b->ek_certificate;
  auto challenge = server->Begin(other_ek);
  ASSERT_TRUE(challenge.ok()) << challenge.status().ToString();
  auto answer = agent_a->AnswerChallenge(*challenge);
  EXPECT_FALSE(answer.ok());
  EXPECT_NE(answer.status().ToString().find("activating the challenge credential"),
            std::string::npos)
      << answer.status().ToString();

  // And a secret that is not the one the credential held is refused by the server.
  auto honest_challenge = server->Begin(*evidence_a);
  ASSERT_TRUE(honest_challenge.ok());
  auto honest_answer = agent_a->AnswerChallenge(*honest_challenge);
  ASSERT_TRUE(honest_answer.ok()) << honest_answer.status().ToString();
  TpmDevIdAnswer wrong_secret = *honest_answer;
  wrong_secret.credential_secret[0] ^= 0x01;
  ExpectRefused(server->Finish(wrong_secret), Code::kPermissionDenied,
                "the activated credential is wrong");
}

TEST_F(TpmDevIdTest, EkCertificateMustMatchEkPublic) {
  auto agent_a = OpenAgent(tpm_a_, "devid-a");
  auto agent_b = OpenAgent(tpm_b_, "devid-b-ca1");
  auto server = MakeServer();
  ASSERT_TRUE(agent_a && agent_b && server);
  auto evidence_a = agent_a->MakeEvidence();
  auto evidence_b = agent_b->MakeEvidence();
  ASSERT_TRUE(evidence_a.ok() && evidence_b.ok());
  TpmDevIdEvidence mixed = *evidence_a;
  mixed.ek_certificate = evidence_b->ek_certificate;
  ExpectRefused(server->Begin(mixed), Code::kPermissionDenied,
                "the EK certificate is not the certificate of ek_public");
}

TEST_F(TpmDevIdTest, EkWithoutCertificateOnlyWhenAllowed) {
  auto agent = OpenAgent(tpm_c_, "devid-c");
  ASSERT_TRUE(agent);
  auto evidence = agent->MakeEvidence();
  ASSERT_TRUE(evidence.ok()) << evidence.status().ToString();
  EXPECT_TRUE(evidence->ek_certificate.empty());

  auto strict = MakeServer();
  ASSERT_TRUE(strict);
  ExpectRefused(strict->Begin(*evidence), Code::kPermissionDenied,
                "allow_ek_without_certificate is off");

  TpmDevIdAttestorConfig config = ServerConfig();
  config.allow_ek_without_certificate = true;
  auto lenient = MakeServer(config);
  ASSERT_TRUE(lenient);
  auto challenge = lenient->Begin(*evidence);
  ASSERT_TRUE(challenge.ok()) << challenge.status().ToString();
  auto answer = agent->AnswerChallenge(*challenge);
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  auto identity = lenient->Finish(*answer);
  ASSERT_TRUE(identity.ok()) << identity.status().ToString();
  EXPECT_TRUE(HasSelector(*identity, "tpm_devid:subject:cn:host-c.example.org"));
}

TEST_F(TpmDevIdTest, PersistentDevIdKeyAttests) {
  TpmDevIdConfig config = TpmDevIdConfig::InDir(tpm_c_->tcti(), *dir_ / "devid-c-persistent");
  config.devid_public_path.clear();
  config.devid_private_path.clear();
  config.devid_persistent_handle = 0x81000100;
  auto agent = TpmDevIdAgent::Open(config);
  ASSERT_TRUE(agent.ok()) << agent.status().ToString();
  TpmDevIdAttestorConfig server_config = ServerConfig();
  server_config.allow_ek_without_certificate = true;
  auto server = MakeServer(server_config);
  ASSERT_TRUE(server);
  auto evidence = (*agent)->MakeEvidence();
  ASSERT_TRUE(evidence.ok()) << evidence.status().ToString();
  auto challenge = server->Begin(*evidence);
  ASSERT_TRUE(challenge.ok()) << challenge.status().ToString();
  auto answer = (*agent)->AnswerChallenge(*challenge);
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  auto identity = server->Finish(*answer);
  ASSERT_TRUE(identity.ok()) << identity.status().ToString();
  EXPECT_TRUE(HasSelector(*identity, "tpm_devid:subject:cn:host-c-persistent"));

  config.devid_persistent_handle = 0x81000101;
  ExpectRefused(TpmDevIdAgent::Open(config), Code::kFailedPrecondition,
                "persistent handle 0x81000101");
}

TEST_F(TpmDevIdTest, ExpiredChallengeIsRefused) {
  auto agent = OpenAgent(tpm_a_, "devid-a");
  auto server = MakeServer();
  ASSERT_TRUE(agent && server);
  auto evidence = agent->MakeEvidence();
  ASSERT_TRUE(evidence.ok()) << evidence.status().ToString();
  const TimePoint now = std::chrono::system_clock::now();
  auto challenge = server->Begin(*evidence, now);
  ASSERT_TRUE(challenge.ok()) << challenge.status().ToString();
  auto answer = agent->AnswerChallenge(*challenge);
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  ExpectRefused(server->Finish(*answer, now + std::chrono::seconds(61)), Code::kPermissionDenied,
                "the challenge expired");
  EXPECT_EQ(server->pending_sessions(), 0u);
}

TEST_F(TpmDevIdTest, ForgedOrDamagedEvidenceIsRefused) {
  auto agent = OpenAgent(tpm_a_, "devid-a");
  auto server = MakeServer();
  ASSERT_TRUE(agent && server);
  auto evidence = agent->MakeEvidence();
  ASSERT_TRUE(evidence.ok()) << evidence.status().ToString();

  ExpectRefused(server->Begin(TpmDevIdEvidence{}), Code::kInvalidArgument,
                "the evidence has no DevID certificate");

  TpmDevIdEvidence truncated = *evidence;
  truncated.devid_public.pop_back();
  ExpectRefused(server->Begin(truncated), Code::kInvalidArgument,
                "devid_public is not a marshalled TPM2B_PUBLIC");

  // The DevID key itself posing as the AK: it can sign anything, a TPM-made attestation or not.
  TpmDevIdEvidence devid_as_ak = *evidence;
  devid_as_ak.ak_public = evidence->devid_public;
  ExpectRefused(server->Begin(devid_as_ak), Code::kPermissionDenied,
                "the AK is not a fixedTPM, fixedParent, restricted signing key");

  TpmDevIdEvidence bad_signature = *evidence;
  bad_signature.certify_signature[bad_signature.certify_signature.size() - 1] ^= 0x01;
  ExpectRefused(server->Begin(bad_signature), Code::kPermissionDenied,
                "certify_signature is not the AK's signature of certify_info");

  // The trusted CA's own certificate chains, but is no DevID.
  TpmDevIdEvidence ca_as_devid = *evidence;
  auto ca1 = CertsFromPem(testing::ReadFile(*dir_ / "ca1" / "ca.crt"));
  ASSERT_TRUE(ca1.ok());
  unsigned char* der = nullptr;
  const int size = i2d_X509(ca1->front().get(), &der);
  ca_as_devid.devid_chain_der = {Bytes(der, der + size)};
  OPENSSL_free(der);
  ExpectRefused(server->Begin(ca_as_devid), Code::kPermissionDenied,
                "the DevID certificate is a CA certificate");
}

TEST_F(TpmDevIdTest, CertificateForAnotherKeyIsRefusedAtOpen) {
  TpmDevIdConfig config = TpmDevIdConfig::InDir(tpm_a_->tcti(), *dir_ / "devid-a");
  config.devid_certificate_path = *dir_ / "devid-b-ca1" / "devid.crt.pem";
  auto agent = TpmDevIdAgent::Open(config);
  ExpectRefused(agent, Code::kFailedPrecondition, "is not for the key in");
}

TEST_F(TpmDevIdTest, BlobFromAnotherTpmIsRefusedAtOpen) {
  auto agent = TpmDevIdAgent::Open(TpmDevIdConfig::InDir(tpm_a_->tcti(), *dir_ / "devid-b-ca1"));
  ExpectRefused(agent, Code::kFailedPrecondition, "loading the DevID key");
}

TEST_F(TpmDevIdTest, ProvisioningNamesAnUnreachableTpm) {
  auto out = testing::RunProcess({ProvisionScript(), "--tcti", "swtpm:host=127.0.0.1,port=1",
                                  "--ca-cert", (*dir_ / "ca1" / "ca.crt").string(), "--ca-key",
                                  (*dir_ / "ca1" / "ca.key").string(), "--out",
                                  (*dir_ / "unused").string()});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_NE(out->exit_code, 0);
  EXPECT_NE(out->err.find("is the TPM at 'swtpm:host=127.0.0.1,port=1' reachable?"),
            std::string::npos)
      << out->err;
  EXPECT_FALSE(std::filesystem::exists(*dir_ / "unused" / "devid.priv"));
}

}  // namespace
}  // namespace sigil
