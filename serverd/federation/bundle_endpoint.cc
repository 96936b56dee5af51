#include "serverd/federation/bundle_endpoint.h"

#include "core/log.h"

namespace sigil::serverd {

BundleEndpoint::BundleEndpoint(BundleEndpointConfig config) : config_(std::move(config)) {
  if (config_.profile == BundleEndpointProfile::kHttpsWeb) {
    certificate_ = std::make_unique<transport::ServingCertificate>(config_.serving_cert_file,
                                                                   "bundle endpoint's serving certificate");
  }
}

Status BundleEndpoint::SetBundle(const TrustBundle& bundle) {
  TrustBundle served = bundle;
  served.refresh_hint = config_.refresh_hint;
  SIGIL_ASSIGN_OR_RETURN(std::string jwks, TrustBundleToJwks(served));
  document_.Set(std::make_shared<const std::string>(std::move(jwks)));
  return Status::Ok();
}

Status BundleEndpoint::SetServerCredentials(std::shared_ptr<const transport::TlsCredentials> credentials) {
  if (config_.profile != BundleEndpointProfile::kHttpsSpiffe || credentials == credentials_) return Status::Ok();
  SIGIL_ASSIGN_OR_RETURN(auto context, transport::TlsContext::CreateServer({.credentials = credentials, .alpn = {"http/1.1"}}));
  svid_tls_->Set(std::move(context));
  credentials_ = std::move(credentials);
  return Status::Ok();
}

void BundleEndpoint::ReloadServingCertificate(std::chrono::steady_clock::time_point now) {
  if (certificate_) certificate_->Reload(now);
}

Status BundleEndpoint::Listen(transport::EventLoop* loop) {
  std::shared_ptr<transport::TlsContextSource> tls = svid_tls_;
  if (certificate_) {
    SIGIL_RETURN_IF_ERROR(certificate_->Load());
    tls = certificate_->source();
  }
  server_ = std::make_unique<transport::HttpGetServer>(loop, transport::HttpGetServerOptions{.tls = tls});
  server_->Route("/", [this] {
    std::shared_ptr<const std::string> document = document_.Current();
    if (!document) return transport::HttpGetResponse{503, "text/plain; charset=utf-8", "no bundle yet\n"};
    return transport::HttpGetResponse{200, "application/json", *document + "\n"};
  });
  SIGIL_RETURN_IF_ERROR(server_->Listen(config_.address, config_.port));
  LogInfo("bundle endpoint listening", {{"address", config_.address + ":" + std::to_string(server_->port())},
                                        {"profile", std::string(BundleEndpointProfileName(config_.profile))}});
  return Status::Ok();
}

void BundleEndpoint::Close() { server_.reset(); }

}  // namespace sigil::serverd
