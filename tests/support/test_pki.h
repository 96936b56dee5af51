// Test PKI: CAs for a trust domain and X509-SVIDs issued by them, built with the OpenSSL C API,
// including the broken ones tests need (expired, CA:true leaves, no or two URI SANs).
//
// Thread safety: each object is used by one thread at a time.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/openssl_util.h"

namespace sigil::testing {

struct TestCert {
  X509Ptr cert;
  EvpPkeyPtr key;

  std::string CertPem() const;
  std::string KeyPem() const;
};

struct SvidOptions {
  std::vector<std::string> uris;       // URI SANs; normally exactly one SPIFFE ID
  std::vector<std::string> dns_names;  // e.g. "localhost" so curl can check the server name
  std::chrono::seconds not_before = std::chrono::seconds(-60);  // relative to now
  std::chrono::seconds not_after = std::chrono::hours(1);
  bool is_ca = false;
};

class TestCa {
 public:
  // A self-signed root whose own URI SAN is spiffe://<trust_domain>.
  explicit TestCa(const std::string& trust_domain);

  TestCert Issue(const SvidOptions& options) const;
  // A plain SVID for `spiffe_id`, valid for an hour, with DNS SAN "localhost".
  TestCert IssueSvid(const std::string& spiffe_id) const;

  X509* cert() const { return root_.cert.get(); }
  std::string CertPem() const { return root_.CertPem(); }

 private:
  TestCert root_;
};

}  // namespace sigil::testing
