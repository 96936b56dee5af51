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

void ReadRelationship(ConfigSection section, const TrustDomain& own, FederationRelationship& relationship) {
  const std::string name = relationship.trust_domain.name();
  if (relationship.trust_domain == own) section.Problem("bundle_endpoint_url", "is this server's own trust domain");
  section.Read("bundle_endpoint_url", relationship.bundle_endpoint_url);
  if (relationship.bundle_endpoint_url.empty()) {
    section.Problem("bundle_endpoint_url", "is required");
  } else if (auto url = transport::HttpsUrl::Parse(relationship.bundle_endpoint_url); !url.ok()) {
    section.Problem("bundle_endpoint_url", url.status().message());
  }
  std::string profile;
  ConfigSection settings = section.ReadChoiceWithSettings("bundle_endpoint_profile", profile, kProfiles);
  if (profile.empty()) {
    section.Problem("bundle_endpoint_profile", "is required: https_spiffe (with endpoint_spiffe_id) or https_web");
  }
  relationship.profile = ProfileNamed(profile);
  if (profile == "https_spiffe") {
    std::string id;
    settings.Read("endpoint_spiffe_id", id);
    auto parsed = SpiffeId::Parse(id);
    if (id.empty()) {
      settings.Problem("endpoint_spiffe_id", "is required with https_spiffe (the endpoint's SVID, e.g. spiffe://" + name +
                                                 "/spire/server)");
    } else if (!parsed.ok()) {
      settings.Problem("endpoint_spiffe_id", parsed.status().message());
    } else if (!parsed->MemberOf(relationship.trust_domain)) {
      settings.Problem("endpoint_spiffe_id", "'" + id + "' is not in trust domain " + name);
    } else {
      relationship.endpoint_spiffe_id = *parsed;
    }
  }
  settings.RefuseUnknownKeys();
  section.RefuseUnknownKeys();
}

}  // namespace

std::string_view BundleEndpointProfileName(BundleEndpointProfile profile) {
  return profile == BundleEndpointProfile::kHttpsWeb ? "https_web" : "https_spiffe";
}

void ReadFederationConfig(ConfigSection section, const TrustDomain& own, FederationConfig& config) {
  if (section.Has("bundle_endpoint")) ReadBundleEndpoint(section.Section("bundle_endpoint"), config.bundle_endpoint);
  ConfigSection federates_with = section.Section("federates_with");
  for (const std::string& name : federates_with.Keys()) {
    auto trust_domain = TrustDomain::Parse(name);
    if (!trust_domain.ok()) {
      federates_with.Problem(name, trust_domain.status().message());
      continue;
    }
    FederationRelationship relationship{.trust_domain = *trust_domain};
    ReadRelationship(federates_with.Section(name), own, relationship);
    config.federates_with.push_back(std::move(relationship));
  }
  section.RefuseUnknownKeys();
}

}  // namespace sigil::serverd
