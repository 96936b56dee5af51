// The agent API's flatbuffers messages: the Envelope verifier, then every body read as serverd
// and agentd read them, with the readers of core/wire (certificates, trust bundles, entries,
// outcomes) and every field touched, so that anything the verifier lets through is safe to read.
#include "core/wire/convert.h"
#include "core/wire/wire.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sigil;
using namespace sigil::wire;

namespace {

// Reads every byte of a vector or string, so that ASan sees a read past its end.
size_t Touch(std::span<const uint8_t> bytes) {
  size_t sum = 0;
  for (uint8_t b : bytes) sum += b;
  return sum;
}
size_t Touch(const flatbuffers::String* s) { return StringOf(s).size(); }

template <typename T>
size_t TouchStrings(const flatbuffers::Vector<flatbuffers::Offset<T>>* strings) {
  size_t n = 0;
  if (strings != nullptr) {
    for (const auto* s : *strings) n += Touch(s);
  }
  return n;
}

void ReadBundle(const wire::TrustBundle* bundle) {
  if (bundle == nullptr) return;
  auto read = TrustBundleFromWire(bundle);
  if (!read.ok()) {
    FUZZ_CHECK(read.status().code() == Code::kInvalidArgument);
    return;
  }
  // What was read is built again and reads the same.
  flatbuffers::FlatBufferBuilder builder;
  auto built = BuildTrustBundle(builder, *read);
  FUZZ_CHECK(built.ok());
  builder.Finish(*built);
  auto again = TrustBundleFromWire(flatbuffers::GetRoot<wire::TrustBundle>(builder.GetBufferPointer()));
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->x509.authorities.size() == read->x509.authorities.size());
  FUZZ_CHECK(again->jwt.authorities.size() == read->jwt.authorities.size());
  FUZZ_CHECK(again->tainted_x509_authorities == read->tainted_x509_authorities);
  FUZZ_CHECK(again->tainted_jwt_authorities == read->tainted_jwt_authorities);
}

void ReadEntries(const flatbuffers::Vector<flatbuffers::Offset<Entry>>* entries) {
  if (entries == nullptr) return;
  static const TrustDomain td = *TrustDomain::Parse(fuzz::kTrustDomain);
  for (const Entry* wire_entry : *entries) {
    const RegistrationEntry entry = EntryFromWire(wire_entry);
    (void)entry.Validate(td);
    flatbuffers::FlatBufferBuilder builder;
    builder.Finish(BuildEntry(builder, entry));
    FUZZ_CHECK(EntryFromWire(flatbuffers::GetRoot<Entry>(builder.GetBufferPointer())) == entry);
  }
}

void ReadCertificates(const flatbuffers::Vector<flatbuffers::Offset<Certificate>>* certs) {
  for (const Bytes& der : CertificatesFromWire(certs)) (void)CertFromDer(der);
}

void ReadBody(const Envelope* envelope) {
  switch (envelope->body_type()) {
    case Body::Outcome:
      (void)StatusFromOutcome(envelope->body_as_Outcome());
      break;
    case Body::AttestationRequest: {
      const auto* request = envelope->body_as_AttestationRequest();
      Touch(BytesOf(request->csr()));
      if (const auto* token = request->data_as_JoinTokenAttestation()) Touch(token->token());
      if (const auto* devid = request->data_as_TpmDevIdAttestation()) {
        ReadCertificates(devid->devid_chain());
        for (const auto* field : {devid->devid_public(), devid->ek_certificate(), devid->ek_public(),
                                  devid->ak_public(), devid->certify_info(), devid->certify_signature()}) {
          Touch(BytesOf(field));
        }
      }
      if (const auto* answer = request->data_as_TpmDevIdChallengeAnswer()) {
        Touch(answer->session_id());
        Touch(BytesOf(answer->nonce_signature()));
        Touch(BytesOf(answer->credential_secret()));
      }
      break;
    }
    case Body::AttestationChallenge: {
      const auto* challenge = envelope->body_as_AttestationChallenge();
      Touch(challenge->session_id());
      for (const auto* field : {challenge->nonce(), challenge->credential_blob(), challenge->encrypted_secret()}) {
        Touch(BytesOf(field));
      }
      break;
    }
    case Body::AgentSvidRequest:
      Touch(BytesOf(envelope->body_as_AgentSvidRequest()->csr()));
      break;
    case Body::AgentSvidResponse: {
      const auto* response = envelope->body_as_AgentSvidResponse();
      Touch(response->agent_spiffe_id());
      ReadCertificates(response->svid_chain());
      ReadBundle(response->bundle());
      break;
    }
    case Body::CsrBatchRequest:
      if (const auto* items = envelope->body_as_CsrBatchRequest()->items()) {
        for (const CsrItem* item : *items) {
          Touch(item->entry_id());
          Touch(BytesOf(item->csr()));
        }
      }
      break;
    case Body::CsrBatchResponse:
      if (const auto* results = envelope->body_as_CsrBatchResponse()->results()) {
        for (const CsrResult* result : *results) {
          Touch(result->entry_id());
          (void)StatusFromOutcome(result->outcome());
          ReadCertificates(result->svid_chain());
          // Any int64 is a time: far-off ones saturate at the clock's ends rather than wrap.
          FUZZ_CHECK(FromUnixSeconds(result->not_before()) <= FromUnixSeconds(result->not_after()) ||
                     result->not_before() > result->not_after());
        }
      }
      break;
    case Body::JwtSvidRequest: {
      const auto* request = envelope->body_as_JwtSvidRequest();
      Touch(request->entry_id());
      TouchStrings(request->audience());
      break;
    }
    case Body::JwtSvidResponse: {
      const auto* response = envelope->body_as_JwtSvidResponse();
      (void)StatusFromOutcome(response->outcome());
      Touch(response->token());
      (void)FromUnixSeconds(response->expires_at());
      break;
    }
    case Body::EntrySyncRequest:
      (void)envelope->body_as_EntrySyncRequest()->since_revision();
      break;
    case Body::EntrySyncResponse: {
      const auto* response = envelope->body_as_EntrySyncResponse();
      ReadEntries(response->entries());
      TouchStrings(response->removed_entry_ids());
      ReadBundle(response->bundle());
      if (response->federated_bundles() != nullptr) {
        for (const auto* federated : *response->federated_bundles()) ReadBundle(federated);
      }
      break;
    }
    case Body::NONE:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto envelope = VerifiedEnvelope({data, size});
  if (!envelope.ok()) {
    FUZZ_CHECK(envelope.status().code() == Code::kInvalidArgument);
    return 0;
  }
  ReadBody(*envelope);
  return 0;
}
