#include "serverd/oidc/oidc_discovery.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <nlohmann/json.hpp>

#include "core/ascii.h"
#include "core/log.h"

namespace sigil::serverd {
namespace {

using Json = nlohmann::ordered_json;
using transport::HttpGetRequest;
using transport::HttpGetResponse;

constexpr char kJson[] = "application/json";


// "a/" + "/b" -> "a/b": the prefix is configured with or without its slashes.
std::string JoinPath(std::string_view prefix, std::string_view leaf) {
  std::string path(prefix);
  if (path.empty() || path.back() != '/') path += '/';
  while (!leaf.empty() && leaf.front() == '/') leaf.remove_prefix(1);
  return path + std::string(leaf);
}

// Host or host:port as a Host header carries it: letters, digits, '.', '-', ':' and an IPv6
// literal's brackets. Anything else would end up in the document's URLs.
bool PlausibleHost(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
  });
}

// The host part of host[:port] ("[::1]:8443" -> "::1").
std::string_view DomainOf(std::string_view host) {
  if (host.starts_with('[')) {
    const size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(1, close - 1);
  }
  const size_t colon = host.find(':');
  return colon == std::string_view::npos || host.find(':', colon + 1) != std::string_view::npos ? host : host.substr(0, colon);
}

HttpGetResponse Error(int status, std::string message) {
  return HttpGetResponse{status, "text/plain; charset=utf-8", std::move(message) + "\n"};
}

}  // namespace

Status CheckOidcUrl(std::string_view url) {
  const size_t scheme_end = url.find("://");
  const std::string_view scheme = scheme_end == std::string_view::npos ? "" : url.substr(0, scheme_end);
  const std::string_view rest = scheme_end == std::string_view::npos ? "" : url.substr(scheme_end + 3);
  if ((scheme != "https" && scheme != "http") || rest.empty() || rest.front() == '/' ||
      url.find_first_of("?# \t") != std::string_view::npos || url.size() > 1024) {
    return InvalidArgumentError("'" + std::string(url) +
                                "' is not an http(s) URL with a host and no query or fragment (for example "
                                "https://oidc.example.org)");
  }
  return Status::Ok();
}

Result<std::pair<std::string, int>> ParseListenAddress(std::string_view text) {
  const auto bad = [&] {
    return InvalidArgumentError("'" + std::string(text) + "' is not host:port or :port");
  };
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad();
  int port = 0;
  const std::string_view digits = text.substr(colon + 1);
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (error != std::errc() || end != digits.data() + digits.size() || port < 0 || port > 65535) return bad();
  std::string host(text.substr(0, colon));
  if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  return std::pair{host, port};
}

void ReadOidcDiscoveryConfig(ConfigSection section, const std::string& server_jwt_issuer, OidcDiscoveryConfig& config) {
  section.Read("domains", config.domains);
  section.Read("insecure_addr", config.insecure_addr);
  section.Read("allow_insecure_scheme", config.allow_insecure_scheme);
  if (section.Has("serving_cert_file")) {
    ConfigSection serving = section.Section("serving_cert_file");
    std::string cert, key;
    serving.Read("cert_file_path", cert);
    serving.Read("key_file_path", key);
    serving.Read("addr", config.serving_addr);
    serving.Read("file_sync_interval", config.file_sync_interval, std::chrono::seconds(1));
    if (cert.empty() || key.empty()) {
      section.Problem("serving_cert_file", "needs both cert_file_path and key_file_path");
    }
    config.cert_file_path = cert;
    config.key_file_path = key;
    if (!ParseListenAddress(config.serving_addr).ok()) {
      serving.Problem("addr", "'" + config.serving_addr + "' is not host:port or :port");
    }
    serving.RefuseUnknownKeys();
  }
  config.jwt_issuer = server_jwt_issuer;
  section.Read("jwt_issuer", config.jwt_issuer);
  section.Read("jwks_uri", config.jwks_uri);
  section.Read("set_key_use", config.set_key_use);
  section.Read("server_path_prefix", config.server_path_prefix);

  // SPIRE's provider has these; serverd serves the keys itself and takes its certificate
  // from files.
  if (section.Has("acme")) {
    section.Problem("acme", "ACME is not built in: give serving_cert_file a certificate your ACME client renews");
  }
  if (section.Has("listen_socket_path")) {
    section.Problem("listen_socket_path", "is not supported: give the proxy insecure_addr on a loopback address");
  }
  for (const char* api : {"server_api", "workload_api"}) {
    if (section.Has(api)) section.Problem(api, "is not needed: serverd serves its own keys");
  }
  if (!config.enabled()) {
    section.Problem("insecure_addr", "oidc_discovery needs insecure_addr or serving_cert_file");
  }
  if (config.domains.empty()) {
    section.Problem("domains", "must name at least one domain the documents are served from");
  }
  for (std::string& domain : config.domains) domain = AsciiLower(domain);
  if (!config.insecure_addr.empty() && !ParseListenAddress(config.insecure_addr).ok()) {
    section.Problem("insecure_addr", "'" + config.insecure_addr + "' is not host:port or :port");
  }
  if (config.allow_insecure_scheme && config.insecure_addr.empty()) {
    section.Problem("allow_insecure_scheme", "only applies with insecure_addr");
  }
  for (const auto& [key, url] : {std::pair{"jwt_issuer", &config.jwt_issuer}, std::pair{"jwks_uri", &config.jwks_uri}}) {
    if (Status checked = CheckOidcUrl(*url); !url->empty() && !checked.ok()) section.Problem(key, checked.message());
  }
  if (!config.server_path_prefix.starts_with('/')) {
    section.Problem("server_path_prefix", "'" + config.server_path_prefix + "' does not start with '/'");
  }
  section.RefuseUnknownKeys();
}

OidcDiscovery::OidcDiscovery(OidcDiscoveryConfig config) : config_(std::move(config)) {}

Status OidcDiscovery::SetKeys(const JwtBundle& bundle) {
  SIGIL_ASSIGN_OR_RETURN(std::string jwks, JwtAuthoritiesToOidcJwks(bundle, config_.set_key_use));
  keys_.Set(std::make_shared<const std::string>(std::move(jwks)));
  return Status::Ok();
}

void OidcDiscovery::ReloadServingCertificate(std::chrono::steady_clock::time_point now) {
  if (certificate_) certificate_->Reload(now);
}

Status OidcDiscovery::Listen(transport::EventLoop* loop) {
  if (!config_.insecure_addr.empty()) {
    SIGIL_ASSIGN_OR_RETURN(auto address, ParseListenAddress(config_.insecure_addr));
    insecure_ = std::make_unique<transport::HttpGetServer>(loop);
    AddRoutes(*insecure_);
    SIGIL_RETURN_IF_ERROR(insecure_->Listen(address.first, address.second));
    LogInfo("OIDC discovery listening", {{"address", address.first + ":" + std::to_string(insecure_->port())},
                                         {"tls", "false"}});
  }
  if (!config_.cert_file_path.empty()) {
    certificate_ = std::make_unique<transport::ServingCertificate>(
        transport::ServingCertificateFiles{config_.cert_file_path, config_.key_file_path, config_.file_sync_interval},
        "OIDC discovery serving certificate");
    SIGIL_RETURN_IF_ERROR(certificate_->Load());
    SIGIL_ASSIGN_OR_RETURN(auto address, ParseListenAddress(config_.serving_addr));
    secure_ = std::make_unique<transport::HttpGetServer>(loop, transport::HttpGetServerOptions{.tls = certificate_->source()});
    AddRoutes(*secure_);
    SIGIL_RETURN_IF_ERROR(secure_->Listen(address.first, address.second));
    LogInfo("OIDC discovery listening", {{"address", address.first + ":" + std::to_string(secure_->port())},
                                         {"tls", "true"}});
  }
  return Status::Ok();
}

void OidcDiscovery::Close() {
  insecure_.reset();
  secure_.reset();
}

void OidcDiscovery::AddRoutes(transport::HttpGetServer& server) {
  server.Route(JoinPath(config_.server_path_prefix, ".well-known/openid-configuration"),
               [this](const HttpGetRequest& request) { return Document(request); });
  server.Route(JoinPath(config_.server_path_prefix, "keys"),
               [this](const HttpGetRequest& request) { return Keys(request); });
}

HttpGetResponse OidcDiscovery::Document(const HttpGetRequest& request) const {
  // Behind a proxy the client's host is in X-Forwarded-Host (its first value, when the
  // request passed several proxies).
  std::string_view host = request.Header("x-forwarded-host");
  if (host.empty()) host = request.Header("host");
  host = host.substr(0, host.find(','));
  while (!host.empty() && host.back() == ' ') host.remove_suffix(1);
  if (!PlausibleHost(host)) return Error(400, "the request names no valid host");
  const std::string domain = AsciiLower(DomainOf(host));
  if (std::find(config_.domains.begin(), config_.domains.end(), domain) == config_.domains.end()) {
    return Error(400, "domain \"" + domain + "\" is not allowed");
  }
  std::string scheme = "https";
  if (config_.allow_insecure_scheme && !request.over_tls && request.Header("x-forwarded-proto") != "https") {
    scheme = "http";
  }
  const std::string base = scheme + "://" + std::string(host);
  std::string issuer = config_.jwt_issuer;
  if (issuer.empty()) issuer = config_.server_path_prefix == "/" ? base : base + config_.server_path_prefix;
  const std::string jwks_uri =
      config_.jwks_uri.empty() ? base + JoinPath(config_.server_path_prefix, "keys") : config_.jwks_uri;
  Json doc;
  doc["issuer"] = issuer;
  doc["jwks_uri"] = jwks_uri;
  doc["authorization_endpoint"] = "";
  doc["response_types_supported"] = {"id_token"};
  doc["subject_types_supported"] = Json::array();
  doc["id_token_signing_alg_values_supported"] = {"RS256", "ES256", "ES384"};
  return HttpGetResponse{200, kJson, doc.dump(2) + "\n"};
}

HttpGetResponse OidcDiscovery::Keys(const HttpGetRequest&) const {
  std::shared_ptr<const std::string> keys = keys_.Current();
  if (!keys) return Error(500, "document not available");
  // Relying parties fetch again when a token names a key they lack; a cache in between would
  // hide a key the CA just published.
  return HttpGetResponse{200, kJson, *keys + "\n",
                         {{"Cache-Control", "no-cache, no-store, must-revalidate"}, {"Pragma", "no-cache"}, {"Expires", "0"}}};
}

}  // namespace sigil::serverd
