// The `federation:` section, as SPIRE's server.conf has it: this server's bundle endpoint, and
// the trust domains it federates with, each with the URL and profile of their endpoint.
//
//   federation:
//     bundle_endpoint:
//       address: 0.0.0.0
//       port: 8443
//       refresh_hint: 5m
//       profile: https_spiffe          # or {https_web: {serving_cert_file: {cert_file_path, key_file_path}}}
//     federates_with:
//       partner.test:
//         bundle_endpoint_url: https://partner.example:8443
//         bundle_endpoint_profile: {https_spiffe: {endpoint_spiffe_id: spiffe://partner.test/spire/server}}
//         # or bundle_endpoint_profile: https_web
//
// The profiles are the SPIFFE Trust Domain and Bundle standard's: https_spiffe authenticates
// the endpoint by its X509-SVID against the bundle already held for its trust domain (set once
// by `bundle set`, then kept current by the endpoint itself), https_web by the web PKI.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/spiffe_id.h"
#include "core/status.h"
#include "serverd/datastore/datastore.h"
#include "transport/serving_certificate.h"

namespace sigil::serverd {

enum class BundleEndpointProfile { kHttpsSpiffe, kHttpsWeb };
std::string_view BundleEndpointProfileName(BundleEndpointProfile profile);  // "https_spiffe"

struct BundleEndpointConfig {
  bool enabled = false;
  std::string address = "0.0.0.0";
  int port = 443;
  // spiffe_refresh_hint in the served bundle: how soon federated servers fetch it again.
  std::chrono::seconds refresh_hint{300};
  BundleEndpointProfile profile = BundleEndpointProfile::kHttpsSpiffe;
  transport::ServingCertificateFiles serving_cert_file;  // https_web
};

struct FederationRelationship {
  TrustDomain trust_domain;
  std::string bundle_endpoint_url;
  BundleEndpointProfile profile = BundleEndpointProfile::kHttpsSpiffe;
  std::optional<SpiffeId> endpoint_spiffe_id;  // https_spiffe

  friend bool operator==(const FederationRelationship&, const FederationRelationship&) = default;
};

// The parts of a relationship as an operator writes them (config file, `federation create`).
struct RelationshipFields {
  std::string trust_domain;
  std::string bundle_endpoint_url;
  std::string bundle_endpoint_profile;  // https_spiffe or https_web
  std::string endpoint_spiffe_id;       // https_spiffe only
};

// Checks the fields; an error's FieldOf names the field that is wrong (its message does not).
// `own` is this server's trust domain, which it cannot federate with.
Result<FederationRelationship> RelationshipFrom(const RelationshipFields& fields, const TrustDomain& own);
std::string FieldOf(const Status& relationship_error);

// How a relationship made with `federation create` is stored, and read back (checked again: a
// stored one that no longer passes is an error, not a relationship).
StoredFederationRelationship ToStored(const FederationRelationship& relationship);
Result<FederationRelationship> FromStored(const StoredFederationRelationship& stored, const TrustDomain& own);

struct FederationConfig {
  BundleEndpointConfig bundle_endpoint;
  std::vector<FederationRelationship> federates_with;
};

// Reads the section; problems go to it. `own` is this server's trust domain, which it cannot
// federate with.
void ReadFederationConfig(ConfigSection section, const TrustDomain& own, FederationConfig& config);

}  // namespace sigil::serverd
