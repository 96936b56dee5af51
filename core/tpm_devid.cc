#include "core/tpm_devid.h"

#include "core/wire/wire.h"

namespace sigil::wire {

namespace {

Bytes CopyOf(const flatbuffers::Vector<uint8_t>* vector) {
  const std::span<const uint8_t> bytes = BytesOf(vector);
  return Bytes(bytes.begin(), bytes.end());
}

}  // namespace

flatbuffers::Offset<TpmDevIdAttestation> TpmDevIdEvidenceToWire(
    flatbuffers::FlatBufferBuilder& builder, const TpmDevIdEvidence& evidence) {
  std::vector<flatbuffers::Offset<Certificate>> chain;
  for (const Bytes& der : evidence.devid_chain_der) {
    chain.push_back(CreateCertificate(builder, builder.CreateVector(der)));
  }
  return CreateTpmDevIdAttestation(
      builder, builder.CreateVector(chain), builder.CreateVector(evidence.devid_public),
      builder.CreateVector(evidence.ek_certificate), builder.CreateVector(evidence.ek_public),
      builder.CreateVector(evidence.ak_public), builder.CreateVector(evidence.certify_info),
      builder.CreateVector(evidence.certify_signature));
}

TpmDevIdEvidence TpmDevIdEvidenceFromWire(const TpmDevIdAttestation& table) {
  TpmDevIdEvidence evidence;
  if (table.devid_chain() != nullptr) {
    for (const Certificate* cert : *table.devid_chain()) {
      evidence.devid_chain_der.push_back(cert == nullptr ? Bytes() : CopyOf(cert->der()));
    }
  }
  evidence.devid_public = CopyOf(table.devid_public());
  evidence.ek_certificate = CopyOf(table.ek_certificate());
  evidence.ek_public = CopyOf(table.ek_public());
  evidence.ak_public = CopyOf(table.ak_public());
  evidence.certify_info = CopyOf(table.certify_info());
  evidence.certify_signature = CopyOf(table.certify_signature());
  return evidence;
}

flatbuffers::Offset<AttestationChallenge> TpmDevIdChallengeToWire(
    flatbuffers::FlatBufferBuilder& builder, const TpmDevIdChallenge& challenge) {
  return CreateAttestationChallenge(builder, builder.CreateString(challenge.session_id),
                                    builder.CreateVector(challenge.nonce),
                                    builder.CreateVector(challenge.credential_blob),
                                    builder.CreateVector(challenge.encrypted_secret));
}

TpmDevIdChallenge TpmDevIdChallengeFromWire(const AttestationChallenge& table) {
  TpmDevIdChallenge challenge;
  challenge.session_id = StringOf(table.session_id());
  challenge.nonce = CopyOf(table.nonce());
  challenge.credential_blob = CopyOf(table.credential_blob());
  challenge.encrypted_secret = CopyOf(table.encrypted_secret());
  return challenge;
}

flatbuffers::Offset<TpmDevIdChallengeAnswer> TpmDevIdAnswerToWire(
    flatbuffers::FlatBufferBuilder& builder, const TpmDevIdAnswer& answer) {
  return CreateTpmDevIdChallengeAnswer(builder, builder.CreateString(answer.session_id),
                                       builder.CreateVector(answer.nonce_signature),
                                       builder.CreateVector(answer.credential_secret));
}

TpmDevIdAnswer TpmDevIdAnswerFromWire(const TpmDevIdChallengeAnswer& table) {
  TpmDevIdAnswer answer;
  answer.session_id = StringOf(table.session_id());
  answer.nonce_signature = CopyOf(table.nonce_signature());
  answer.credential_secret = CopyOf(table.credential_secret());
  return answer;
}

}  // namespace sigil::wire
