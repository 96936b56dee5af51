// TPM DevID node attestation (SPIRE's tpm_devid), as the plain values the agent and the server
// exchange. The agent API carries them in core/wire/attestation.fbs (TpmDevIdAttestation,
// AttestationChallenge, TpmDevIdChallengeAnswer), field for field; TPM structures stay in the
// TPM's own marshalled form so that neither side re-encodes what the TPM produced.
//
// The exchange:
//   agent  → server  TpmDevIdEvidence   DevID chain, DevID key, EK (+ certificate), AK, and the
//                                       AK's TPM2_Certify of the DevID key
//   server → agent   TpmDevIdChallenge  a nonce to sign with the DevID key, and a credential
//                                       made for the EK and the AK's name
//   agent  → server  TpmDevIdAnswer     the nonce signature and the activated credential
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <string>
#include <vector>

#include "core/openssl_util.h"
#include "core/wire/attestation_generated.h"

namespace sigil {

struct TpmDevIdEvidence {
  std::vector<Bytes> devid_chain_der;  // leaf first
  Bytes devid_public;                  // TPM2B_PUBLIC of the DevID key
  Bytes ek_certificate;                // DER; empty when the TPM holds none
  Bytes ek_public;                     // TPM2B_PUBLIC of the endorsement key
  Bytes ak_public;                     // TPM2B_PUBLIC of the attestation key
  Bytes certify_info;                  // TPM2B_ATTEST from TPM2_Certify(DevID key, AK)
  Bytes certify_signature;             // TPMT_SIGNATURE by the AK over certify_info's contents
};

struct TpmDevIdChallenge {
  std::string session_id;
  Bytes nonce;
  Bytes credential_blob;   // TPM2B_ID_OBJECT
  Bytes encrypted_secret;  // TPM2B_ENCRYPTED_SECRET
};

struct TpmDevIdAnswer {
  std::string session_id;
  Bytes nonce_signature;    // TPMT_SIGNATURE by the DevID key over the nonce
  Bytes credential_secret;  // what TPM2_ActivateCredential recovered
};

namespace wire {

// The same values in their wire tables and back. Reading takes a table the caller has verified
// (VerifiedMessage); an absent field reads as empty.
flatbuffers::Offset<TpmDevIdAttestation> TpmDevIdEvidenceToWire(
    flatbuffers::FlatBufferBuilder& builder, const TpmDevIdEvidence& evidence);
TpmDevIdEvidence TpmDevIdEvidenceFromWire(const TpmDevIdAttestation& table);
flatbuffers::Offset<AttestationChallenge> TpmDevIdChallengeToWire(
    flatbuffers::FlatBufferBuilder& builder, const TpmDevIdChallenge& challenge);
TpmDevIdChallenge TpmDevIdChallengeFromWire(const AttestationChallenge& table);
flatbuffers::Offset<TpmDevIdChallengeAnswer> TpmDevIdAnswerToWire(
    flatbuffers::FlatBufferBuilder& builder, const TpmDevIdAnswer& answer);
TpmDevIdAnswer TpmDevIdAnswerFromWire(const TpmDevIdChallengeAnswer& table);

}  // namespace wire
}  // namespace sigil
