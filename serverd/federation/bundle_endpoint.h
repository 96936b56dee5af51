// This server's bundle endpoint, as the SPIFFE federation standard has it: the trust bundle as a
// SPIFFE JWKS document (with spiffe_sequence and spiffe_refresh_hint) at "/", for the servers of
// other trust domains that federate with this one. Over TLS with this server's own X509-SVID
// (https_spiffe: a federated server checks it against the bundle it already holds) or with a
// certificate from files (https_web: checked by the web PKI).
//
// Thread safety: SetBundle, SetServerCredentials and ReloadServingCertificate from any thread;
// Listen and Close on the listener's loop, where requests are answered from the document
// SetBundle rendered.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "core/swappable.h"
#include "core/trust_bundle.h"
#include "serverd/federation/federation_config.h"
#include "transport/http_get_server.h"
#include "transport/serving_certificate.h"
#include "transport/tls.h"

namespace sigil::serverd {

class BundleEndpoint {
 public:
  explicit BundleEndpoint(BundleEndpointConfig config);

  // This trust domain's bundle changed: renders the document served from now on.
  Status SetBundle(const TrustBundle& bundle);
  // https_spiffe: this server's X509-SVID was renewed; the next handshake presents it.
  Status SetServerCredentials(std::shared_ptr<const transport::TlsCredentials> credentials);
  // https_web: reads the certificate files again when due and changed.
  void ReloadServingCertificate(std::chrono::steady_clock::time_point now);

  Status Listen(transport::EventLoop* loop);
  void Close();
  int port() const { return server_ ? server_->port() : 0; }

 private:
  BundleEndpointConfig config_;
  Swappable<std::string> document_;
  std::shared_ptr<transport::TlsContextSource> svid_tls_ = std::make_shared<transport::TlsContextSource>();
  std::shared_ptr<const transport::TlsCredentials> credentials_;  // the SVID svid_tls_ presents
  std::unique_ptr<transport::ServingCertificate> certificate_;    // https_web
  std::unique_ptr<transport::HttpGetServer> server_;
};

}  // namespace sigil::serverd
