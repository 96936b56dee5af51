#include "core/wire/convert.h"

#include <chrono>

#include "core/x509_ca.h"

namespace sigil::wire {

flatbuffers::Offset<Outcome> BuildOutcome(flatbuffers::FlatBufferBuilder& builder, const Status& status) {
  auto message = builder.CreateString(status.MessageWithContext());
  return CreateOutcome(builder, static_cast<uint8_t>(status.code()), message);
}

Status StatusFromOutcome(const Outcome* outcome) {
  if (outcome == nullptr) return Status(Code::kInternal, "the answer carries no outcome");
  if (outcome->code() == 0) return Status::Ok();
  if (outcome->code() > static_cast<uint8_t>(Code::kUnauthenticated)) {
    return Status(Code::kUnknown, StringOf(outcome->message()));
  }
  return Status(static_cast<Code>(outcome->code()), StringOf(outcome->message()));
}

Bytes OutcomeMessage(const Status& status) {
  flatbuffers::FlatBufferBuilder builder(256);
  return FinishMessage(builder, BuildOutcome(builder, status));
}

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<Certificate>>> BuildCertificates(
    flatbuffers::FlatBufferBuilder& builder, const std::vector<Bytes>& ders) {
  std::vector<flatbuffers::Offset<Certificate>> certs;
  certs.reserve(ders.size());
  for (const Bytes& der : ders) certs.push_back(CreateCertificate(builder, builder.CreateVector(der)));
  return builder.CreateVector(certs);
}

std::vector<Bytes> CertificatesFromWire(const flatbuffers::Vector<flatbuffers::Offset<Certificate>>* certs) {
  std::vector<Bytes> out;
  if (certs == nullptr) return out;
  out.reserve(certs->size());
  for (const Certificate* cert : *certs) {
    auto der = BytesOf(cert->der());
    out.emplace_back(der.begin(), der.end());
  }
  return out;
}

Result<flatbuffers::Offset<TrustBundle>> BuildTrustBundle(flatbuffers::FlatBufferBuilder& builder,
                                                          const sigil::TrustBundle& bundle) {
  std::vector<Bytes> ders;
  for (const auto& cert : bundle.x509.authorities) {
    SIGIL_ASSIGN_OR_RETURN(Bytes der, CertToDer(cert.get()));
    ders.push_back(std::move(der));
  }
  auto x509 = BuildCertificates(builder, ders);
  std::vector<flatbuffers::Offset<JwtAuthority>> jwt;
  for (const auto& [key_id, authority] : bundle.jwt.authorities) {
    SIGIL_ASSIGN_OR_RETURN(Bytes public_der, PublicKeyToDer(authority.public_key.get()));
    const int64_t expires = authority.expires_at
                                ? std::chrono::duration_cast<std::chrono::seconds>(
                                      authority.expires_at->time_since_epoch()).count()
                                : 0;
    jwt.push_back(CreateJwtAuthority(builder, builder.CreateString(key_id),
                                     builder.CreateVector(public_der), expires));
  }
  auto jwt_vector = builder.CreateVector(jwt);
  auto name = builder.CreateString(bundle.trust_domain().name());
  const auto strings = [&](const std::set<std::string, std::less<>>& ids)
      -> flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>> {
    if (ids.empty()) return 0;  // absent: the bundle of nearly every sync has none
    return builder.CreateVectorOfStrings(std::vector<std::string>(ids.begin(), ids.end()));
  };
  auto tainted_x509 = strings(bundle.tainted_x509_authorities);
  auto tainted_jwt = strings(bundle.tainted_jwt_authorities);
  return CreateTrustBundle(builder, name, x509, jwt_vector, bundle.sequence, bundle.refresh_hint.count(),
                           tainted_x509, tainted_jwt);
}

Result<sigil::TrustBundle> TrustBundleFromWire(const TrustBundle* wire_bundle) {
  if (wire_bundle == nullptr) return InvalidArgumentError("the message carries no trust bundle");
  auto td = TrustDomain::Parse(StringOf(wire_bundle->trust_domain()));
  if (!td.ok()) return std::move(td).status().AddContext("trust bundle");
  sigil::TrustBundle bundle(*td);
  for (const Bytes& der : CertificatesFromWire(wire_bundle->x509_authorities())) {
    auto cert = CertFromDer(der);
    if (!cert.ok()) return std::move(cert).status().AddContext("trust bundle X.509 authority");
    bundle.x509.Add(cert->get());
  }
  if (wire_bundle->jwt_authorities() != nullptr) {
    for (const auto* authority : *wire_bundle->jwt_authorities()) {
      auto key = PublicKeyFromDer(BytesOf(authority->public_key_der()));
      if (!key.ok()) return std::move(key).status().AddContext("trust bundle JWT authority");
      std::optional<std::chrono::system_clock::time_point> expiry;
      if (authority->expires_at() != 0) {
        expiry = FromUnixSeconds(authority->expires_at());
      }
      bundle.jwt.authorities.emplace(StringOf(authority->key_id()), sigil::JwtAuthority(std::move(*key), expiry));
    }
  }
  bundle.sequence = wire_bundle->sequence();
  bundle.refresh_hint = std::chrono::seconds(wire_bundle->refresh_hint_seconds());
  for (auto [wire_ids, ids] : {std::pair{wire_bundle->tainted_x509_authorities(), &bundle.tainted_x509_authorities},
                               std::pair{wire_bundle->tainted_jwt_authorities(), &bundle.tainted_jwt_authorities}}) {
    if (wire_ids == nullptr) continue;
    for (const auto* id : *wire_ids) ids->insert(StringOf(id));
  }
  return bundle;
}

flatbuffers::Offset<Entry> BuildEntry(flatbuffers::FlatBufferBuilder& builder, const RegistrationEntry& entry) {
  std::vector<flatbuffers::Offset<Selector>> selectors;
  selectors.reserve(entry.selectors.size());
  for (const auto& selector : entry.selectors) {
    selectors.push_back(CreateSelector(builder, builder.CreateString(selector.type),
                                       builder.CreateString(selector.value)));
  }
  auto selector_vector = builder.CreateVector(selectors);
  auto dns = builder.CreateVectorOfStrings(entry.dns_names);
  auto federates = builder.CreateVectorOfStrings(entry.federates_with);
  auto id = builder.CreateString(entry.id);
  auto spiffe_id = builder.CreateString(entry.spiffe_id);
  auto parent_id = builder.CreateString(entry.parent_id);
  auto hint = builder.CreateString(entry.hint);
  return CreateEntry(builder, id, spiffe_id, parent_id, selector_vector, entry.x509_svid_ttl.count(),
                     entry.jwt_svid_ttl.count(), dns, federates, entry.admin, entry.downstream,
                     entry.expires_at, hint, static_cast<uint64_t>(entry.revision));
}

RegistrationEntry EntryFromWire(const Entry* wire_entry) {
  RegistrationEntry entry;
  entry.id = StringOf(wire_entry->id());
  entry.spiffe_id = StringOf(wire_entry->spiffe_id());
  entry.parent_id = StringOf(wire_entry->parent_id());
  if (wire_entry->selectors() != nullptr) {
    for (const auto* selector : *wire_entry->selectors()) {
      entry.selectors.push_back({StringOf(selector->type()), StringOf(selector->value())});
    }
  }
  entry.x509_svid_ttl = std::chrono::seconds(wire_entry->x509_svid_ttl_seconds());
  entry.jwt_svid_ttl = std::chrono::seconds(wire_entry->jwt_svid_ttl_seconds());
  if (wire_entry->dns_names() != nullptr) {
    for (const auto* name : *wire_entry->dns_names()) entry.dns_names.push_back(name->str());
  }
  if (wire_entry->federates_with() != nullptr) {
    for (const auto* td : *wire_entry->federates_with()) entry.federates_with.push_back(td->str());
  }
  entry.admin = wire_entry->admin();
  entry.downstream = wire_entry->downstream();
  entry.expires_at = wire_entry->expires_at();
  entry.hint = StringOf(wire_entry->hint());
  entry.revision = static_cast<int64_t>(wire_entry->revision());
  return entry;
}

}  // namespace sigil::wire
