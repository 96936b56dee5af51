// The server's half of TPM DevID node attestation (SPIRE's tpm_devid node attestor).
//
// Begin checks the agent's evidence without a TPM:
//   - the DevID certificate chains to a configured DevID CA, and is the certificate of the
//     TPM key in devid_public, which is fixedTPM and a signing key;
//   - the EK certificate chains to a configured endorsement (TPM manufacturer) CA and is the
//     certificate of ek_public; an EK without a certificate only when configured so;
//   - the AK is a restricted, fixedTPM, fixedParent signing key, and certify_info is a
//     TPM-generated TPM2_Certify of the DevID key's name, signed by the AK.
// It then answers with a challenge: a nonce for the DevID key to sign, and a credential made
// for the EK and the AK's name, which only the TPM holding both can activate. Finish checks
// both answers. Together they prove that the DevID key lives in the TPM whose EK was certified.
//
// The session between Begin and Finish is single use and expires (challenge_ttl): Finish
// erases it whatever the outcome, so a replayed answer finds no session.
//
// Every refusal is PermissionDenied (InvalidArgument for bytes that do not parse) with a message
// naming the check that failed, fit for the log line.
//
// As a NodeAttestor, Attest runs Begin for TpmDevIdAttestation data (answering with the
// challenge) and Finish for TpmDevIdChallengeAnswer data (proving the host).
//
// Thread safety: Begin, Finish and Attest may be called from any thread at once, never from an
// event loop: they do RSA and ECDSA work (a few hundred microseconds each).
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/openssl_util.h"
#include "core/selector.h"
#include "core/status.h"
#include "core/tpm_devid.h"
#include "core/x509_ca.h"
#include "serverd/attestor/node_attestor.h"

namespace sigil::serverd {

struct TpmDevIdAttestorConfig {
  // PEM files of trusted roots for DevID certificates (SPIRE's devid_ca_path).
  std::vector<std::filesystem::path> devid_ca_paths;
  // PEM files of trusted TPM manufacturer CAs for EK certificates (SPIRE's endorsement_ca_path).
  std::vector<std::filesystem::path> endorsement_ca_paths;
  // Accept evidence whose TPM offers only its EK public key, no certificate. The DevID CA then
  // vouches alone for the TPM being genuine.
  bool allow_ek_without_certificate = false;
  std::chrono::seconds challenge_ttl{60};
  size_t max_pending_sessions = 10000;
};

// node_attestors.tpm_devid: devid_ca_path (one path or a list; required), endorsement_ca_path
// (required unless allow_ek_without_certificate), allow_ek_without_certificate. Problems are
// recorded on `section`.
TpmDevIdAttestorConfig ReadTpmDevIdAttestorConfig(ConfigSection& section);

// What a successful attestation established about the host.
struct TpmDevIdIdentity {
  std::string fingerprint;  // SHA-1 hex of the DevID certificate's DER, as SPIRE prints it
  std::string agent_path;   // "tpm_devid/<fingerprint>", for AgentSpiffeId
  // tpm_devid:subject:cn:<CN>, tpm_devid:issuer:cn:<CN>, and tpm_devid:fingerprint:<SHA-1>
  // for every certificate of the verified chain above the leaf (intermediates, root), as
  // SPIRE's selectors.
  std::vector<Selector> selectors;
};

class TpmDevIdAttestor final : public NodeAttestor {
 public:
  // Loads the CA files. InvalidArgument naming a file that is missing or holds no certificate,
  // and when no DevID CA is configured, or no endorsement CA while EK certificates are required.
  static Result<std::unique_ptr<TpmDevIdAttestor>> Create(const TpmDevIdAttestorConfig& config);
  // Off unless node_attestors: has a tpm_devid section (ReadTpmDevIdAttestorConfig).
  static NodeAttestorPlugin Plugin();
  ~TpmDevIdAttestor() override;

  Result<TpmDevIdChallenge> Begin(const TpmDevIdEvidence& evidence,
                                  TimePoint now = std::chrono::system_clock::now());
  Result<TpmDevIdIdentity> Finish(const TpmDevIdAnswer& answer,
                                  TimePoint now = std::chrono::system_clock::now());

  size_t pending_sessions() const;

  std::string_view name() const override { return "tpm_devid"; }
  std::vector<wire::AttestationData> data_types() const override {
    return {wire::AttestationData::TpmDevIdAttestation, wire::AttestationData::TpmDevIdChallengeAnswer};
  }
  Result<AttestationStep> Attest(const wire::AttestationRequest& request) override;

 private:
  struct Session;
  TpmDevIdAttestor(TpmDevIdAttestorConfig config, std::vector<X509Ptr> devid_cas,
                   std::vector<X509Ptr> endorsement_cas);

  const TpmDevIdAttestorConfig config_;
  const std::vector<X509Ptr> devid_cas_;
  const std::vector<X509Ptr> endorsement_cas_;
  mutable std::mutex mutex_;
  std::map<std::string, Session> sessions_;
};

}  // namespace sigil::serverd
