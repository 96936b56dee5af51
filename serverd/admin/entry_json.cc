#include "serverd/admin/entry_json.h"

#include <cctype>
#include <charconv>
#include <limits>

#include "core/base64url.h"
#include "core/spiffe_id.h"

namespace sigil::serverd {

using nlohmann::json;

nlohmann::json SpiffeIdToJson(const std::string& id) {
  auto parsed = SpiffeId::Parse(id);
  if (!parsed.ok()) return json{{"trust_domain", ""}, {"path", id}};
  return json{{"trust_domain", parsed->trust_domain().name()}, {"path", parsed->path()}};
}

namespace {

json SelectorsToJson(const std::vector<Selector>& selectors) {
  json out = json::array();
  for (const Selector& s : selectors) out.push_back({{"type", s.type}, {"value", s.value}});
  return out;
}

// Reads the fields of one object, collecting problems by field name.
class FieldReader {
 public:
  FieldReader(const json& object, std::string where) : object_(object), where_(std::move(where)) {}

  const json* Find(const char* key) {
    auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }

  void String(const char* key, std::string& out) {
    const json* value = Find(key);
    if (value == nullptr) return;
    if (!value->is_string()) return Problem(key, "expected a string");
    out = value->get<std::string>();
  }

  // SPIRE writes int64 fields as strings in JSON (protobuf's mapping); accept both, but only
  // values an int64 holds: a wider one is refused rather than wrapped or saturated.
  void Int(const char* key, int64_t& out) {
    const json* value = Find(key);
    if (value == nullptr) return;
    if (value->is_number_integer() && !value->is_number_unsigned()) {
      out = value->get<int64_t>();
      return;
    }
    if (value->is_number_unsigned()) {
      if (value->get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        out = static_cast<int64_t>(value->get<uint64_t>());
        return;
      }
      return Problem(key, "is larger than a 64-bit whole number holds");
    }
    if (value->is_string()) {
      const std::string& text = value->get_ref<const std::string&>();
      int64_t parsed = 0;
      const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), parsed);
      if (!text.empty() && error == std::errc() && end == text.data() + text.size()) {
        out = parsed;
        return;
      }
      if (error == std::errc::result_out_of_range) return Problem(key, "is larger than a 64-bit whole number holds");
    }
    Problem(key, "expected a whole number");
  }

  void Bool(const char* key, bool& out) {
    const json* value = Find(key);
    if (value == nullptr) return;
    if (!value->is_boolean()) return Problem(key, "expected true or false");
    out = value->get<bool>();
  }

  void StringList(const char* key, std::vector<std::string>& out) {
    const json* value = Find(key);
    if (value == nullptr) return;
    if (!value->is_array()) return Problem(key, "expected a list of strings");
    std::vector<std::string> items;
    for (const auto& item : *value) {
      if (!item.is_string()) return Problem(key, "expected a list of strings");
      items.push_back(item.get<std::string>());
    }
    out = std::move(items);
  }

  // "spiffe://td/path" or {"trust_domain": "td", "path": "/path"}.
  void Id(const char* key, std::string& out) {
    const json* value = Find(key);
    if (value == nullptr) return;
    if (value->is_string()) {
      out = value->get<std::string>();
      return;
    }
    if (value->is_object() && value->contains("trust_domain") && (*value)["trust_domain"].is_string()) {
      const std::string path = value->contains("path") && (*value)["path"].is_string()
                                   ? (*value)["path"].get<std::string>() : "";
      out = "spiffe://" + (*value)["trust_domain"].get<std::string>() + path;
      return;
    }
    Problem(key, "expected a SPIFFE ID string or {\"trust_domain\", \"path\"}");
  }

  void Selectors(const char* key, std::vector<Selector>& out) {
    const json* value = Find(key);
    if (value == nullptr) return;
    if (!value->is_array()) return Problem(key, "expected a list of {\"type\", \"value\"}");
    for (const auto& item : *value) {
      if (item.is_string()) {
        auto parsed = Selector::Parse(item.get<std::string>());
        if (!parsed.ok()) return Problem(key, parsed.status().message());
        out.push_back(*parsed);
      } else if (item.is_object() && item.contains("type") && item.contains("value") &&
                 item["type"].is_string() && item["value"].is_string()) {
        out.push_back({item["type"].get<std::string>(), item["value"].get<std::string>()});
      } else {
        return Problem(key, "expected a list of {\"type\", \"value\"}");
      }
    }
  }

  void Problem(const char* key, const std::string& message) {
    problems_ += (problems_.empty() ? "" : "; ") + where_ + "." + key + ": " + message;
  }

  Status Finish() const {
    if (!object_.is_object()) return InvalidArgumentError(where_ + ": expected an object");
    return problems_.empty() ? Status::Ok() : InvalidArgumentError(problems_);
  }

 private:
  const json& object_;
  std::string where_;
  std::string problems_;
};

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
    r.String("id", e.id);
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
    r.Bool("admin", e.admin);
    r.Bool("downstream", e.downstream);
    r.Int("expires_at", e.expires_at);
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

json AgentToJson(const AttestedAgent& a) {
  return json{
      {"id", SpiffeIdToJson(a.spiffe_id)},
      {"attestation_type", a.attestation_type},
      {"x509svid_serial_number", a.serial},
      {"x509svid_expires_at", std::to_string(a.expires_at)},
      {"selectors", SelectorsToJson(a.selectors)},
      {"banned", a.banned},
      {"created_at", std::to_string(a.created_at)},
  };
}

Result<AttestedAgent> AgentFromJson(const json& object) {
  AttestedAgent a;
  FieldReader r(object, "agent");
  if (object.is_object()) {
    r.Id("id", a.spiffe_id);
    r.String("attestation_type", a.attestation_type);
    r.String("x509svid_serial_number", a.serial);
    r.Int("x509svid_expires_at", a.expires_at);
    r.Selectors("selectors", a.selectors);
    r.Bool("banned", a.banned);
    r.Int("created_at", a.created_at);
  }
  SIGIL_RETURN_IF_ERROR(r.Finish());
  return a;
}

namespace {

Result<SelectorMatch> SelectorMatchFromText(const std::string& name) {
  // SPIRE's API spells them MATCH_EXACT …; its CLI says exact ….
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.rfind("match_", 0) == 0) lower = lower.substr(6);
  return ParseSelectorMatch(lower);
}

}  // namespace

Result<EntryFilter> EntryFilterFromJson(const json& body) {
  EntryFilter filter;
  const auto f = body.find("filter");
  if (f == body.end() || f->is_null()) return filter;
  FieldReader by(*f, "filter");
  auto optional_id = [&](const char* key, std::optional<std::string>& out) {
    if (by.Find(key) == nullptr) return;
    std::string id;
    by.Id(key, id);
    out = std::move(id);
  };
  if (f->is_object()) {
    optional_id("by_spiffe_id", filter.spiffe_id);
    optional_id("by_parent_id", filter.parent_id);
  }
  SIGIL_RETURN_IF_ERROR(by.Finish());
  const json* s = by.Find("by_selectors");
  if (s == nullptr) return filter;
  FieldReader by_selectors(*s, "filter.by_selectors");
  std::vector<Selector> selectors;
  std::string match;
  if (s->is_object()) {
    by_selectors.Selectors("selectors", selectors);
    by_selectors.String("match", match);
  }
  SIGIL_RETURN_IF_ERROR(by_selectors.Finish());
  filter.selectors = SelectorSet(selectors);
  if (!match.empty()) {
    auto parsed = SelectorMatchFromText(match);
    if (!parsed.ok()) return InvalidArgumentError("filter.by_selectors.match: " + parsed.status().message());
    filter.match = *parsed;
  }
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
      if ((spiffe != nullptr) == (web != nullptr)) {
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
