// A TLS server certificate and key that an operator keeps in PEM files (renewed by an ACME
// client or by hand), served by an HttpGetServer: read at start, read again every
// `sync_interval` when they changed, and swapped in for the next handshake. A pair that cannot
// be read, or whose key does not match, keeps the old one and is logged once per failure
// spell. SPIRE's serving_cert_file sections (the OIDC provider, the https_web bundle endpoint)
// work the same way.
//
// Thread safety: Load and Reload from one thread at a time; source() from any.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/failure_log.h"
#include "core/status.h"
#include "transport/tls.h"

namespace sigil::transport {

struct ServingCertificateFiles {
  std::filesystem::path cert_file_path;  // the chain, leaf first
  std::filesystem::path key_file_path;
  std::chrono::seconds sync_interval{60};
};

class ServingCertificate {
 public:
  ServingCertificate(ServingCertificateFiles files, std::string what, std::vector<std::string> alpn = {"http/1.1"});

  // Reads the files now; the error names the file when they cannot be used.
  Status Load();
  // Load when `sync_interval` has passed since the last try; failures are logged here.
  void Reload(std::chrono::steady_clock::time_point now);

  // The context for the next handshake (none until Load succeeded).
  const std::shared_ptr<TlsContextSource>& source() const { return source_; }

 private:
  const ServingCertificateFiles files_;
  const std::string what_;
  const std::vector<std::string> alpn_;
  std::shared_ptr<TlsContextSource> source_ = std::make_shared<TlsContextSource>();
  std::string chain_pem_;
  std::string key_pem_;
  std::chrono::steady_clock::time_point next_sync_{};
  FailureLog failures_;
};

}  // namespace sigil::transport
