// OIDC discovery for JWT-SVIDs, as SPIRE's oidc-discovery-provider serves it: the discovery
// document at /.well-known/openid-configuration names the issuer and the key set (jwks_uri,
// /keys), which holds the trust domain's JWT authorities as a plain JWKS. With these, an OIDC
// relying party (OpenBao's or Vault's JWT auth, a cloud's workload identity federation, any
// library that discovers keys from an issuer URL) checks JWT-SVIDs on its own.
//
// serverd serves it itself instead of through a second daemon: the keys live in this process,
// so a CA rotation reaches the key set the moment the CA manager publishes it, and there is no
// other program to deploy, authorise to an API and keep polling. Its listener is a bounded
// HttpGetServer, over TLS with a certificate from files (read again when they change), or in
// the clear behind a proxy that terminates TLS.
//
// Thread safety: SetKeys and the TLS reload from any thread; the handlers on the listener's
// loop. The key set is rendered by SetKeys, so a request only copies a string.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "core/swappable.h"
#include "core/trust_bundle.h"
#include "transport/http_get_server.h"
#include "transport/serving_certificate.h"
#include "transport/tls.h"

namespace sigil::serverd {

// The `oidc_discovery:` section, with SPIRE's oidc-discovery-provider keys.
struct OidcDiscoveryConfig {
  // Host names requests may name (Host, or X-Forwarded-Host behind a proxy); others get 400.
  std::vector<std::string> domains;
  // Plain HTTP, "host:port" (":8008" listens on every address).
  std::string insecure_addr;
  // With insecure_addr: the document's URLs say http:// unless the request came over TLS or the
  // proxy says so (X-Forwarded-Proto: https). Otherwise they always say https://.
  bool allow_insecure_scheme = false;
  // serving_cert_file: TLS with a PEM chain and key, read again every file_sync_interval.
  std::filesystem::path cert_file_path;
  std::filesystem::path key_file_path;
  std::string serving_addr = ":443";
  std::chrono::seconds file_sync_interval{60};
  // The document's issuer; default: server.jwt_issuer, else scheme://host of the request.
  std::string jwt_issuer;
  // The document's jwks_uri; default: scheme://host<prefix>/keys of the request.
  std::string jwks_uri;
  bool set_key_use = false;  // "use": "sig" on every key
  std::string server_path_prefix = "/";

  bool enabled() const { return !insecure_addr.empty() || !cert_file_path.empty(); }
};

// Reads the section; `server_jwt_issuer` is the default issuer. Problems go to the section.
void ReadOidcDiscoveryConfig(ConfigSection section, const std::string& server_jwt_issuer, OidcDiscoveryConfig& config);

// "host:port" or ":port" as a listener takes it; InvalidArgument naming `text` otherwise.
Result<std::pair<std::string, int>> ParseListenAddress(std::string_view text);

// An issuer or JWKS URL that relying parties fetch (OpenBao, Vault and PyJWKClient fetch
// <iss>/.well-known/openid-configuration): http or https, with a host, without query or
// fragment. InvalidArgument saying so otherwise.
Status CheckOidcUrl(std::string_view url);

class OidcDiscovery {
 public:
  explicit OidcDiscovery(OidcDiscoveryConfig config);

  // The JWT authorities changed: renders the key set served from now on.
  Status SetKeys(const JwtBundle& bundle);

  // Reads the serving certificate and key again when due and changed (ServingCertificate).
  void ReloadServingCertificate(std::chrono::steady_clock::time_point now);

  // Starts the listeners on `loop` (the insecure one, the TLS one, or both).
  Status Listen(transport::EventLoop* loop);
  void Close();  // on the loop
  int insecure_port() const { return insecure_ ? insecure_->port() : 0; }
  int tls_port() const { return secure_ ? secure_->port() : 0; }

  transport::HttpGetResponse Document(const transport::HttpGetRequest& request) const;
  transport::HttpGetResponse Keys(const transport::HttpGetRequest& request) const;

 private:
  void AddRoutes(transport::HttpGetServer& server);

  OidcDiscoveryConfig config_;
  Swappable<std::string> keys_;
  std::unique_ptr<transport::ServingCertificate> certificate_;  // with serving_cert_file
  std::unique_ptr<transport::HttpGetServer> insecure_;
  std::unique_ptr<transport::HttpGetServer> secure_;
};

}  // namespace sigil::serverd
