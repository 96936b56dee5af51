// The agent's half of TPM DevID attestation (SPIRE's tpm_devid): the evidence that a host's
// TPM holds the key of its DevID certificate, and the answer to the server's challenge.
//
// The DevID key is a TPM key under the owner hierarchy's storage primary (SRK), kept as the
// blob pair tools/provision-devid writes (devid.pub: TPM2B_PUBLIC, devid.priv: TPM2B_PRIVATE),
// or made persistent at a handle (provision-devid --persist), next to its certificate chain
// (devid.crt.pem: leaf first, then intermediates).
//
// MakeEvidence takes the RSA-2048 endorsement key (EK) persistent at 0x81010001, or recreates
// it from the TCG default template, reads its certificate from NV index 0x01c00002 when the
// TPM has one, makes a fresh attestation key (AK, a
// restricted ECDSA P-256 signing primary in the endorsement hierarchy) and has the AK certify
// the DevID key (TPM2_Certify). AnswerChallenge signs the server's nonce with the DevID key and
// recovers the server's secret with TPM2_ActivateCredential, which the TPM performs only when
// the AK named in the credential and the EK it was encrypted to are both loaded in this TPM.
//
// Thread safety: one attestation at a time per object (calls are serialised); TPM commands share
// the process's one connection per TCTI with the TPM key store. Blocks on the TPM: call from a
// worker thread, never from an event loop.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "core/status.h"
#include "core/tpm_devid.h"

namespace sigil::hw {

// Where tools/provision-devid writes the DevID files unless told otherwise.
inline constexpr char kDefaultDevIdDir[] = "/var/lib/sigil-agent/devid";

struct TpmDevIdConfig {
  std::string tcti;                              // swtpm:host=127.0.0.1,port=N, device:/dev/tpmrm0
  std::filesystem::path devid_public_path;       // TPM2B_PUBLIC
  std::filesystem::path devid_private_path;      // TPM2B_PRIVATE, wrapped by the SRK
  std::filesystem::path devid_certificate_path;  // PEM, leaf first
  // When not 0, the DevID key is persistent at this handle (0x81000000-0x817fffff) and the
  // two blob paths are not read.
  uint32_t devid_persistent_handle = 0;
  // Files holding auth values on their first line, as the TPM key store's auth_file (SPIRE's
  // devid_password and endorsement_hierarchy_password); empty when the value is empty.
  std::filesystem::path devid_auth_file;
  std::filesystem::path endorsement_auth_file;

  // devid.pub, devid.priv and devid.crt.pem in `dir`, as tools/provision-devid names them.
  static TpmDevIdConfig InDir(std::string tcti,
                              const std::filesystem::path& dir = kDefaultDevIdDir);
};

class TpmDevIdAgent {
 public:
  // Reads the DevID files and checks that this TPM loads the key and that the certificate is
  // the key's. InvalidArgument naming the file that is missing or damaged, FailedPrecondition
  // when the certificate is for another key or the blob is another TPM's, Unavailable when the
  // TPM cannot be reached.
  static Result<std::unique_ptr<TpmDevIdAgent>> Open(const TpmDevIdConfig& config);
  ~TpmDevIdAgent();

  // Evidence for the server. Each call makes a new AK, which AnswerChallenge then uses.
  Result<TpmDevIdEvidence> MakeEvidence();

  // The answer to the challenge the server made for the latest evidence. FailedPrecondition
  // before MakeEvidence; the TPM's error when the credential was not made for this TPM's EK and
  // AK.
  Result<TpmDevIdAnswer> AnswerChallenge(const TpmDevIdChallenge& challenge);

  class Impl;

 private:
  explicit TpmDevIdAgent(std::unique_ptr<Impl> impl);
  std::mutex mutex_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sigil::hw
