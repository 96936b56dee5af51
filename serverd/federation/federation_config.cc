#include "serverd/federation/federation_config.h"

#include "transport/https_get.h"

namespace sigil::serverd {
namespace {

const std::vector<std::string> kProfiles = {"https_spiffe", "https_web"};

BundleEndpointProfile ProfileNamed(const std::string& name) {
  return name == "https_web" ? BundleEndpointProfile::kHttpsWeb : BundleEndpointProfile::kHttpsSpiffe;
}

void ReadBundleEndpoint(ConfigSection section, BundleEndpointConfig& config) {
  config.enabled = true;
  section.Read("address", config.address);
  section.Read("port", config.port, 0, 65535);
  section.Read("refresh_hint", config.refresh_hint, std::chrono::seconds(1));
  std::string profile = "https_spiffe";
  ConfigSection settings = section.ReadChoiceWithSettings("profile", profile, kProfiles);
  config.profile = ProfileNamed(profile);
  if (config.profile == BundleEndpointProfile::kHttpsWeb) {
    if (settings.Has("acme")) {
      settings.Problem("acme", "ACME is not built in: give serving_cert_file a certificate your ACME client renews");
    }
    ConfigSection files = settings.Section("serving_cert_file");
    std::string cert, key;
    files.Read("cert_file_path", cert);
    files.Read("key_file_path", key);
    files.Read("file_sync_interval", config.serving_cert_file.sync_interval, std::chrono::seconds(1));
    if (cert.empty() || key.empty()) {
      settings.Problem("serving_cert_file", "https_web needs serving_cert_file with cert_file_path and key_file_path");
    }
    config.serving_cert_file.cert_file_path = cert;
    config.serving_cert_file.key_file_path = key;
    files.RefuseUnknownKeys();
  }
  settings.RefuseUnknownKeys();
  section.RefuseUnknownKeys();
}

void ReadRelationship(ConfigSection section, const std::string& name, const TrustDomain& own,
                      std::vector<FederationRelationship>& relationships) {
  RelationshipFields fields{.trust_domain = name};
  section.Read("bundle_endpoint_url", fields.bundle_endpoint_url);
  ConfigSection settings =
      section.ReadChoiceWithSettings("bundle_endpoint_profile", fields.bundle_endpoint_profile, kProfiles);
  if (fields.bundle_endpoint_profile == "https_spiffe") settings.Read("endpoint_spiffe_id", fields.endpoint_spiffe_id);
  settings.RefuseUnknownKeys();
  section.RefuseUnknownKeys();
  auto relationship = RelationshipFrom(fields, own);
  if (!relationship.ok()) {
    section.Problem(FieldOf(relationship.status()), relationship.status().message());
    return;
  }
  relationships.push_back(std::move(*relationship));
}

}  // namespace

std::string_view BundleEndpointProfileName(BundleEndpointProfile profile) {
  return profile == BundleEndpointProfile::kHttpsWeb ? "https_web" : "https_spiffe";
}

void ReadFederationConfig(ConfigSection section, const TrustDomain& own, FederationConfig& config) {
  if (section.Has("bundle_endpoint")) ReadBundleEndpoint(section.Section("bundle_endpoint"), config.bundle_endpoint);
  ConfigSection federates_with = section.Section("federates_with");
  for (const std::string& name : federates_with.Keys()) {
    ReadRelationship(federates_with.Section(name), name, own, config.federates_with);
  }
  section.RefuseUnknownKeys();
}

Result<FederationRelationship> RelationshipFrom(const RelationshipFields& fields, const TrustDomain& own) {
  // Each error carries the field it is about as its one context frame (FieldOf).
  const auto wrong = [](const char* field, std::string message) {
    return InvalidArgumentError(std::move(message)).AddContext(field);
  };
  auto trust_domain = TrustDomain::Parse(fields.trust_domain);
  if (!trust_domain.ok()) return wrong("trust_domain", "'" + fields.trust_domain + "': " + trust_domain.status().message());
  if (*trust_domain == own) return wrong("trust_domain", own.name() + " is this server's own trust domain");
  FederationRelationship relationship{.trust_domain = *trust_domain, .bundle_endpoint_url = fields.bundle_endpoint_url};
  if (fields.bundle_endpoint_url.empty()) return wrong("bundle_endpoint_url", "is required");
  if (auto url = transport::HttpsUrl::Parse(fields.bundle_endpoint_url); !url.ok()) {
    return wrong("bundle_endpoint_url", url.status().message());
  }
  const std::string& profile = fields.bundle_endpoint_profile;
  if (profile != "https_spiffe" && profile != "https_web") {
    return wrong("bundle_endpoint_profile", (profile.empty() ? std::string("is required") : "'" + profile + "' is unknown") +
                                                ": https_spiffe (with endpoint_spiffe_id) or https_web");
  }
  relationship.profile = ProfileNamed(profile);
  const std::string& id = fields.endpoint_spiffe_id;
  if (relationship.profile == BundleEndpointProfile::kHttpsWeb) {
    if (!id.empty()) return wrong("endpoint_spiffe_id", "is only for https_spiffe; https_web checks the web PKI");
    return relationship;
  }
  if (id.empty()) {
    return wrong("endpoint_spiffe_id", "is required with https_spiffe (the endpoint's SVID, e.g. spiffe://" +
                                           trust_domain->name() + "/spire/server)");
  }
  auto parsed = SpiffeId::Parse(id);
  if (!parsed.ok()) return wrong("endpoint_spiffe_id", "'" + id + "': " + parsed.status().message());
  if (!parsed->MemberOf(*trust_domain)) {
    return wrong("endpoint_spiffe_id", "'" + id + "' is not in trust domain " + trust_domain->name());
  }
  relationship.endpoint_spiffe_id = *parsed;
  return relationship;
}

std::string FieldOf(const Status& relationship_error) {
  return relationship_error.context().empty() ? std::string() : relationship_error.context().front();
}

StoredFederationRelationship ToStored(const FederationRelationship& relationship) {
  return {relationship.trust_domain.name(), relationship.bundle_endpoint_url,
          std::string(BundleEndpointProfileName(relationship.profile)),
          relationship.endpoint_spiffe_id ? relationship.endpoint_spiffe_id->str() : std::string()};
}

Result<FederationRelationship> FromStored(const StoredFederationRelationship& stored, const TrustDomain& own) {
  return RelationshipFrom({stored.trust_domain, stored.bundle_endpoint_url, stored.bundle_endpoint_profile,
                           stored.endpoint_spiffe_id},
                          own);
}

}  // namespace sigil::serverd
