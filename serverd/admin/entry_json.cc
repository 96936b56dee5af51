#include "serverd/admin/entry_json.h"

#include "core/base64url.h"
#include "core/spiffe_id.h"
#include "serverd/admin/field_reader.h"

namespace sigil::serverd {

using nlohmann::json;

nlohmann::json SpiffeIdToJson(const std::string& id) {
  auto parsed = SpiffeId::Parse(id);
  if (!parsed.ok()) return json{{"trust_domain", ""}, {"path", id}};
  return json{{"trust_domain", parsed->trust_domain().name()}, {"path", parsed->path()}};
}

json SelectorsToJson(const std::vector<Selector>& selectors) {
  json out = json::array();
  for (const Selector& s : selectors) out.push_back({{"type", s.type}, {"value", s.value}});
  return out;
}

Status UnsupportedEntryFieldError(const UnsupportedEntryField& field, const std::string& name) {
  return InvalidArgumentError(name + ": " + field.why);
}

namespace {

// The member at a dotted path of `object` ("additional_attributes.jwt_svid_include_jti").
const json* Member(const json& object, std::string_view path) {
  const json* at = &object;
  while (!path.empty()) {
    const size_t dot = path.find('.');
    const std::string key(path.substr(0, dot));
    if (!at->is_object() || !at->contains(key)) return nullptr;
    at = &(*at)[key];
    path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
  }
  return at;
}

// SPIRE's JSON writes every field, so a file of its entries holds "admin": false and the like:
// only a field set to true asks for what Sigil does not do.
void RefuseUnsupportedFields(const json& object, FieldReader& r) {
  if (const json* attributes = r.Find("additional_attributes"); attributes != nullptr && !attributes->is_object()) {
    r.Problem("additional_attributes", "expected an object");
  }
  for (const UnsupportedEntryField& field : kUnsupportedEntryFields) {
    const json* value = Member(object, field.json_path);
    if (value == nullptr || value->is_null()) continue;
    if (!value->is_boolean()) {
      r.Problem(field.json_path, "expected true or false");
    } else if (value->get<bool>()) {
      r.Problem(field.json_path, field.why);
    }
  }
}

}  // namespace

json EntryToJson(const RegistrationEntry& e) {
  return json{
      {"id", e.id},
      {"spiffe_id", SpiffeIdToJson(e.spiffe_id)},
      {"parent_id", SpiffeIdToJson(e.parent_id)},
      {"selectors", SelectorsToJson(e.selectors)},
      {"x509_svid_ttl", e.x509_svid_ttl.count()},
      {"jwt_svid_ttl", e.jwt_svid_ttl.count()},
      {"dns_names", e.dns_names},
      {"federates_with", e.federates_with},
      {"admin", e.admin},
      {"downstream", e.downstream},
      {"expires_at", std::to_string(e.expires_at)},
      {"hint", e.hint},
      {"revision_number", std::to_string(e.revision)},
      {"created_at", std::to_string(e.created_at)},
  };
}

Result<RegistrationEntry> EntryFromJson(const json& object, const std::string& where) {
  RegistrationEntry e;
  FieldReader r(object, where);
  if (object.is_object()) {
    r.String(r.Find("id") != nullptr ? "id" : "entry_id", e.id);
    r.Id("spiffe_id", e.spiffe_id);
    r.Id("parent_id", e.parent_id);
    r.Selectors("selectors", e.selectors);
    int64_t ttl = 0;
    r.Int("x509_svid_ttl", ttl);
    e.x509_svid_ttl = std::chrono::seconds(ttl);
    ttl = 0;
    r.Int("jwt_svid_ttl", ttl);
    e.jwt_svid_ttl = std::chrono::seconds(ttl);
    r.StringList("dns_names", e.dns_names);
    r.StringList("federates_with", e.federates_with);
    RefuseUnsupportedFields(object, r);
    r.Bool("downstream", e.downstream);
    r.Int(r.Find("expires_at") != nullptr ? "expires_at" : "entryExpiry", e.expires_at);
    r.String("hint", e.hint);
    r.Int("revision_number", e.revision);
    r.Int("created_at", e.created_at);
  }
  SIGIL_RETURN_IF_ERROR(r.Finish());
  return e;
}

Result<std::vector<RegistrationEntry>> EntriesRequestFromJson(const json& body) {
  const auto items = body.is_object() ? body.find("entries") : body.end();
  if (!body.is_object() || items == body.end() || !items->is_array()) {
    return InvalidArgumentError("expected {\"entries\": [...]}");
  }
  std::vector<RegistrationEntry> entries;
  entries.reserve(items->size());
  for (size_t i = 0; i < items->size(); ++i) {
    SIGIL_ASSIGN_OR_RETURN(RegistrationEntry e, EntryFromJson((*items)[i], "entries[" + std::to_string(i) + "]"));
    entries.push_back(std::move(e));
  }
  return entries;
}

Result<std::vector<RegistrationEntry>> EntriesFromDataFile(std::string_view text, const std::string& source) {
  const json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return InvalidArgumentError(source + " is not valid JSON");
  auto entries = EntriesRequestFromJson(document);
  if (!entries.ok()) return InvalidArgumentError(source + ": " + entries.status().message());
  return entries;
}

Result<EntryFilter> EntryFilterFromJson(const json& body) {
  EntryFilter filter;
  const auto f = body.find("filter");
  if (f == body.end() || f->is_null()) return filter;
  FieldReader by(*f, "filter");
  if (f->is_object()) {
    for (auto [key, out] : {std::pair{"by_spiffe_id", &filter.spiffe_id}, std::pair{"by_parent_id", &filter.parent_id}}) {
      if (by.Find(key) == nullptr) continue;
      std::string id;
      by.Id(key, id);
      *out = std::move(id);
    }
    by.SelectorMatchObject("by_selectors", filter.selectors, filter.match);
    if (const json* federates = by.Find("by_federates_with"); federates != nullptr) {
      FieldReader inner(*federates, "filter.by_federates_with");
      std::vector<std::string> trust_domains;
      if (federates->is_object()) {
        inner.StringList("trust_domains", trust_domains);
        inner.Match("match", filter.federates_with_match);
      }
      SIGIL_RETURN_IF_ERROR(inner.Finish());
      filter.federates_with = std::move(trust_domains);
    }
    std::optional<bool> downstream;
    by.OptionalBool("by_downstream", downstream);
    filter.downstream_only = downstream.value_or(false);
    by.OptionalString("by_hint", filter.hint);
  }
  SIGIL_RETURN_IF_ERROR(by.Finish());
  return filter;
}

Result<std::string> RequiredStringFromJson(const json& body, const char* key) {
  const auto value = body.find(key);
  if (value == body.end() || !value->is_string() || value->get_ref<const std::string&>().empty()) {
    return InvalidArgumentError(std::string("\"") + key + "\" is required");
  }
  return value->get<std::string>();
}

Result<std::vector<std::string>> StringListFromJson(const json& body, const char* key) {
  const auto list = body.find(key);
  if (list == body.end() || !list->is_array()) {
    return InvalidArgumentError(std::string("expected {\"") + key + "\": [...]}");
  }
  std::vector<std::string> out;
  out.reserve(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    if (!(*list)[i].is_string()) {
      return InvalidArgumentError(std::string(key) + "[" + std::to_string(i) + "]: expected a string");
    }
    out.push_back((*list)[i].get<std::string>());
  }
  return out;
}

Result<EntryService::BundleDeleteMode> BundleDeleteModeFromJson(const json& body) {
  const auto mode = body.find("mode");
  if (mode == body.end()) return EntryService::BundleDeleteMode::kRestrict;
  const std::string name = mode->is_string() ? mode->get<std::string>() : "";
  if (name == "RESTRICT") return EntryService::BundleDeleteMode::kRestrict;
  if (name == "DISSOCIATE") return EntryService::BundleDeleteMode::kDissociate;
  if (name == "DELETE") return EntryService::BundleDeleteMode::kDelete;
  return InvalidArgumentError("mode: expected \"RESTRICT\", \"DISSOCIATE\" or \"DELETE\", got " + mode->dump());
}

Result<std::vector<FederatedBundleRequest>> FederatedBundlesFromJson(const json& body) {
  const auto items = body.find("bundles");
  if (items == body.end() || !items->is_array()) {
    return InvalidArgumentError("expected {\"bundles\": [{\"trust_domain\", \"jwks\" or \"pem\"}]}");
  }
  std::vector<FederatedBundleRequest> bundles;
  bundles.reserve(items->size());
  for (size_t i = 0; i < items->size(); ++i) {
    const json& item = (*items)[i];
    FieldReader r(item, "bundles[" + std::to_string(i) + "]");
    FederatedBundleRequest bundle;
    if (item.is_object()) {
      r.String("trust_domain", bundle.trust_domain);
      std::string text;
      if (r.Find("jwks") != nullptr) {
        r.String("jwks", text);
        bundle.jwks = text;
      } else if (r.Find("pem") != nullptr) {
        r.String("pem", text);
        bundle.pem = text;
      } else {
        r.Problem("jwks", "a bundle needs \"jwks\" or \"pem\"");
      }
    }
    SIGIL_RETURN_IF_ERROR(r.Finish());
    bundles.push_back(std::move(bundle));
  }
  return bundles;
}

json FederationRelationshipToJson(const FederationRelationship& relationship) {
  json out{{"trust_domain", relationship.trust_domain.name()}, {"bundle_endpoint_url", relationship.bundle_endpoint_url}};
  if (relationship.profile == BundleEndpointProfile::kHttpsWeb) {
    out["https_web"] = json::object();
  } else {
    out["https_spiffe"] = {{"endpoint_spiffe_id", relationship.endpoint_spiffe_id ? relationship.endpoint_spiffe_id->str() : ""}};
  }
  return out;
}

Result<std::vector<FederationRelationshipRequest>> FederationRelationshipsFromJson(const json& body) {
  const auto items = body.find("federation_relationships");
  if (items == body.end() || !items->is_array()) {
    return InvalidArgumentError("expected {\"federation_relationships\": [{\"trust_domain\", \"bundle_endpoint_url\", "
                                "\"https_spiffe\" or \"https_web\"}]}");
  }
  std::vector<FederationRelationshipRequest> requests;
  for (size_t i = 0; i < items->size(); ++i) {
    const json& item = (*items)[i];
    const std::string where = "federation_relationships[" + std::to_string(i) + "]";
    FieldReader r(item, where);
    FederationRelationshipRequest request;
    if (item.is_object()) {
      r.String("trust_domain", request.fields.trust_domain);
      r.String("bundle_endpoint_url", request.fields.bundle_endpoint_url);
      const json* spiffe = r.Find("https_spiffe");
      const json* web = r.Find("https_web");
      if (spiffe == nullptr && web == nullptr && r.Find("bundle_endpoint_profile") != nullptr) {
        // A profile by name, as `federation create -bundleEndpointProfile` sends one it has no
        // shape for: the relationship's own check names it.
        r.String("bundle_endpoint_profile", request.fields.bundle_endpoint_profile);
      } else if ((spiffe != nullptr) == (web != nullptr)) {
        r.Problem("https_spiffe", "a relationship needs exactly one of \"https_spiffe\" and \"https_web\"");
      } else if (web != nullptr) {
        request.fields.bundle_endpoint_profile = "https_web";
      } else {
        request.fields.bundle_endpoint_profile = "https_spiffe";
        FieldReader profile(*spiffe, where + ".https_spiffe");
        profile.String("endpoint_spiffe_id", request.fields.endpoint_spiffe_id);
        SIGIL_RETURN_IF_ERROR(profile.Finish());
      }
      if (const json* bundle = r.Find("trust_domain_bundle"); bundle != nullptr) {
        FieldReader b(*bundle, where + ".trust_domain_bundle");
        FederatedBundleRequest held{.trust_domain = request.fields.trust_domain};
        std::string text;
        if (b.Find("jwks") != nullptr) {
          b.String("jwks", text);
          held.jwks = text;
        } else {
          b.String("pem", text);
          held.pem = text;
        }
        SIGIL_RETURN_IF_ERROR(b.Finish());
        request.bundle = std::move(held);
      }
    }
    SIGIL_RETURN_IF_ERROR(r.Finish());
    requests.push_back(std::move(request));
  }
  return requests;
}

Result<std::vector<FederationRelationshipRequest>> FederationRelationshipsFromDataFile(std::string_view text,
                                                                                     const std::string& source) {
  const json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return InvalidArgumentError(source + " is not valid JSON");
  const auto items = document.find("federationRelationships");
  if (!document.is_object() || items == document.end() || !items->is_array()) {
    return InvalidArgumentError(source + ": expected {\"federationRelationships\": [...]}");
  }
  std::vector<FederationRelationshipRequest> requests;
  for (size_t i = 0; i < items->size(); ++i) {
    const json& item = (*items)[i];
    FieldReader r(item, source + ": federationRelationships[" + std::to_string(i) + "]");
    FederationRelationshipRequest request;
    std::string format = "pem";
    if (item.is_object()) {
      r.String("trustDomain", request.fields.trust_domain);
      r.String("bundleEndpointURL", request.fields.bundle_endpoint_url);
      r.String("bundleEndpointProfile", request.fields.bundle_endpoint_profile);
      r.String("endpointSPIFFEID", request.fields.endpoint_spiffe_id);
      r.String("trustDomainBundleFormat", format);
      if (format != "pem" && format != "spiffe") r.Problem("trustDomainBundleFormat", "expected \"pem\" or \"spiffe\"");
      if (const json* bundle = r.Find("trustDomainBundle"); bundle != nullptr) {
        FederatedBundleRequest held{.trust_domain = request.fields.trust_domain};
        if (format == "spiffe") {
          held.jwks = bundle->is_string() ? bundle->get<std::string>() : bundle->dump();
        } else if (bundle->is_string()) {
          held.pem = bundle->get<std::string>();
        } else {
          r.Problem("trustDomainBundle", "a PEM bundle is a string");
        }
        request.bundle = std::move(held);
      }
    }
    SIGIL_RETURN_IF_ERROR(r.Finish());
    requests.push_back(std::move(request));
  }
  return requests;
}

Result<JoinTokenRequest> JoinTokenRequestFromJson(const json& body) {
  JoinTokenRequest request;
  FieldReader r(body, "token");
  if (body.is_object()) {
    int64_t ttl = request.ttl.count();
    r.Int("ttl", ttl);
    if (ttl <= 0 || ttl > kMaxJoinTokenTtl.count()) {
      r.Problem("ttl", "must be a positive number of seconds, at most " + std::to_string(kMaxJoinTokenTtl.count()) +
                           " (a year), got " + std::to_string(ttl));
    }
    request.ttl = std::chrono::seconds(ttl);
    r.Id("agent_id", request.agent_id);
  }
  SIGIL_RETURN_IF_ERROR(r.Finish());
  return request;
}

namespace {

// A TTL member: absent or 0 is the server's default; otherwise 1..kMaxSvidTtl seconds.
void ReadSvidTtl(FieldReader& r, std::chrono::seconds& out) {
  int64_t ttl = 0;
  r.Int("ttl", ttl);
  if (ttl < 0 || ttl > kMaxSvidTtl.count()) {
    r.Problem("ttl", "must be a positive number of seconds, at most " + std::to_string(kMaxSvidTtl.count()) +
                         " (a year), got " + std::to_string(ttl));
    return;
  }
  out = std::chrono::seconds(ttl);
}

}  // namespace

Result<MintX509SvidRequest> MintX509SvidRequestFromJson(const json& body) {
  MintX509SvidRequest request;
  FieldReader r(body, "MintX509SVID");
  if (body.is_object()) {
    std::string csr;
    r.String("csr", csr);
    if (csr.empty()) {
      r.Problem("csr", "is required (a base64 DER PKCS#10 request)");
    } else if (auto der = Base64Decode(csr); der.ok()) {
      request.csr = std::move(*der);
    } else {
      r.Problem("csr", der.status().message());
    }
    r.Id("spiffe_id", request.spiffe_id);
    ReadSvidTtl(r, request.ttl);
    r.StringList("dns", request.dns_names);
  }
  SIGIL_RETURN_IF_ERROR(r.Finish());
  return request;
}

Result<MintJwtSvidRequest> MintJwtSvidRequestFromJson(const json& body) {
  MintJwtSvidRequest request;
  FieldReader r(body, "MintJWTSVID");
  if (body.is_object()) {
    r.Id("spiffe_id", request.spiffe_id);
    ReadSvidTtl(r, request.ttl);
    r.StringList("audience", request.audience);
  }
  SIGIL_RETURN_IF_ERROR(r.Finish());
  return request;
}

}  // namespace sigil::serverd
