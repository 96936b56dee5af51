#include "core/x509_svid.h"

#include <openssl/x509v3.h>

#include "core/base64url.h"
#include "core/csr.h"

namespace sigil {
namespace {

struct UnownedX509StackDeleter {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
};

Status Deny(std::string message) { return PermissionDeniedError("X509-SVID rejected: " + message); }

}  // namespace

std::vector<X509*> X509Svid::raw_chain() const {
  std::vector<X509*> out;
  out.reserve(chain.size());
  for (const auto& cert : chain) out.push_back(cert.get());
  return out;
}

std::string DerChainToPem(std::span<const Bytes> chain_der) {
  std::string pem;
  for (const Bytes& der : chain_der) {
    const std::string b64 = Base64Encode(der);
    pem += "-----BEGIN CERTIFICATE-----\n";
    for (size_t i = 0; i < b64.size(); i += 64) pem += b64.substr(i, 64) + "\n";
    pem += "-----END CERTIFICATE-----\n";
  }
  return pem;
}

std::string X509SvidDer::ChainPem() const { return DerChainToPem(chain_der); }
std::string X509Svid::ChainPem() const { return DerChainToPem(chain_der); }

Result<X509SvidParams> X509SvidParamsForEntry(const RegistrationEntry& entry,
                                              std::chrono::seconds default_ttl, TimePoint now) {
  auto id = SpiffeId::Parse(entry.spiffe_id);
  if (!id.ok()) return id.status().AddContext("entry spiffe_id");
  return X509SvidParamsForEntry(entry, std::move(*id), default_ttl, now);
}

X509SvidParams X509SvidParamsForEntry(const RegistrationEntry& entry, SpiffeId id,
                                      std::chrono::seconds default_ttl, TimePoint now) {
  X509SvidParams params(std::move(id));
  params.dns_names = entry.dns_names;
  params.ttl = entry.x509_svid_ttl.count() > 0 ? entry.x509_svid_ttl : default_ttl;
  params.now = now;
  return params;
}

Result<X509SvidDer> MintX509SvidDer(const X509Ca& ca, EVP_PKEY* public_key,
                                    const X509SvidParams& params) {
  auto checked = CertifiableKey::Check(public_key);
  if (!checked.ok()) return checked.status().AddContext("X509-SVID public key");
  return MintX509SvidDer(ca, *checked, params);
}

Result<X509SvidDer> MintX509SvidDer(const X509Ca& ca, const CertifiableKey& public_key,
                                    const X509SvidParams& params) {
  if (!params.spiffe_id.MemberOf(ca.trust_domain())) {
    return InvalidArgumentError("SPIFFE ID " + params.spiffe_id.str() +
                                " is not in the CA's trust domain " + ca.trust_domain().name());
  }
  for (const auto& dns : params.dns_names) {
    SIGIL_RETURN_IF_ERROR(ValidateDnsName(dns).AddContext("X509-SVID DNS name"));
  }
  if (params.ttl.count() <= 0) {
    return InvalidArgumentError("X509-SVID TTL must be positive, got " +
                                std::to_string(params.ttl.count()) + "s");
  }
  CertTemplate t;
  t.subject.country = params.country;
  t.subject.organization = params.organization;
  if (!params.dns_names.empty()) t.subject.common_name = params.dns_names.front();
  t.not_before = params.now - kBackdate;
  // The leaf never outlives its CA, as SPIRE caps it; compared in whole seconds so that a TTL
  // far beyond the CA's life (INT64_MAX) is capped rather than overflowing the clock.
  const auto ca_left = std::chrono::duration_cast<std::chrono::seconds>(ca.not_after() - params.now);
  t.not_after = params.ttl < ca_left ? params.now + params.ttl : ca.not_after();
  t.uri_sans = {params.spiffe_id.str()};
  t.dns_sans = params.dns_names;
  auto leaf = ca.IssueDer(t, public_key);
  if (!leaf.ok()) return leaf.status().AddContext("issuing X509-SVID for " + params.spiffe_id.str());

  X509SvidDer svid{.spiffe_id = params.spiffe_id};
  // What IssueDer wrote: the template's validity within the CA's, in whole seconds.
  svid.not_before = std::chrono::time_point_cast<std::chrono::seconds>(std::max(t.not_before, ca.not_before()));
  svid.expires_at = std::chrono::time_point_cast<std::chrono::seconds>(
      std::min(t.not_after, ca.not_after()));
  svid.chain_der.reserve(1 + ca.intermediates_der().size());
  svid.chain_der.push_back(std::move(*leaf));
  for (const auto& der : ca.intermediates_der()) svid.chain_der.push_back(der);
  return svid;
}

Result<X509SvidDer> MintX509SvidDerFromCsr(const X509Ca& ca, std::span<const uint8_t> csr_der,
                                           const X509SvidParams& params) {
  SIGIL_ASSIGN_OR_RETURN(CertifiableKey key, CheckCsr(csr_der));
  return MintX509SvidDer(ca, key, params);
}

namespace {

Result<X509Svid> WithParsedLeaf(const X509Ca& ca, Result<X509SvidDer> minted) {
  if (!minted.ok()) return minted.status();
  SIGIL_ASSIGN_OR_RETURN(X509Ptr leaf, CertFromDer(minted->chain_der.front()));
  X509Svid svid{.spiffe_id = std::move(minted->spiffe_id),
                .chain_der = std::move(minted->chain_der),
                .expires_at = minted->expires_at};
  svid.chain.reserve(svid.chain_der.size());
  svid.chain.push_back(std::move(leaf));
  for (const auto& cert : ca.intermediates()) svid.chain.push_back(UpRef(cert.get()));
  return svid;
}

}  // namespace

Result<X509Svid> MintX509Svid(const X509Ca& ca, EVP_PKEY* public_key,
                              const X509SvidParams& params) {
  return WithParsedLeaf(ca, MintX509SvidDer(ca, public_key, params));
}

Result<X509Svid> MintX509SvidFromCsr(const X509Ca& ca, std::span<const uint8_t> csr_der,
                                     const X509SvidParams& params) {
  return WithParsedLeaf(ca, MintX509SvidDerFromCsr(ca, csr_der, params));
}

Result<SpiffeId> AgentSpiffeId(const TrustDomain& td, std::string_view suffix) {
  return SpiffeId::FromPath(td, "/spire/agent/" + std::string(suffix));
}

SpiffeId ServerSpiffeId(const TrustDomain& td) {
  return *SpiffeId::FromPath(td, "/spire/server");
}

Result<SpiffeId> X509SvidSpiffeId(X509* leaf) {
  if (leaf == nullptr) return InvalidArgumentError("no leaf certificate");
  int critical = -1;
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(leaf, NID_subject_alt_name, &critical, nullptr)));
  if (!names) {
    ClearOpenSSLErrors();
    if (critical == -2) return InvalidArgumentError("leaf has more than one subjectAltName extension");
    return InvalidArgumentError("leaf has no URI SAN");
  }
  const ASN1_IA5STRING* uri = nullptr;
  int uris = 0;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type == GEN_URI) {
      ++uris;
      uri = name->d.uniformResourceIdentifier;
    }
  }
  if (uris == 0) return InvalidArgumentError("leaf has no URI SAN");
  if (uris > 1) {
    return InvalidArgumentError("leaf has " + std::to_string(uris) +
                                " URI SANs; an X509-SVID has exactly one");
  }
  std::string_view text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                        static_cast<size_t>(ASN1_STRING_length(uri)));
  auto id = SpiffeId::Parse(text);
  if (!id.ok()) return id.status().AddContext("leaf URI SAN");
  return id;
}

Result<SpiffeId> VerifyX509Svid(std::span<X509* const> chain, const X509Bundle& bundle,
                                TimePoint now) {
  if (chain.empty() || chain.front() == nullptr) {
    return InvalidArgumentError("X509-SVID chain is empty");
  }
  X509* leaf = chain.front();
  auto id = X509SvidSpiffeId(leaf);
  if (!id.ok()) {
    const Status status = id.status();
    std::string what = status.message();
    for (const auto& frame : status.context()) what += " (" + frame + ")";
    return Deny(what);
  }
  if (!id->MemberOf(bundle.trust_domain)) {
    return Deny("SPIFFE ID " + id->str() + " is not in trust domain " + bundle.trust_domain.name());
  }
  const uint32_t flags = X509_get_extension_flags(leaf);
  if ((flags & EXFLAG_INVALID) != 0) return Deny("leaf has malformed or duplicate extensions");
  if ((flags & EXFLAG_CA) != 0) return Deny("leaf is a CA (basicConstraints CA:true)");
  if ((flags & EXFLAG_KUSAGE) == 0) return Deny("leaf has no keyUsage extension");
  const uint32_t usage = X509_get_key_usage(leaf);
  if ((usage & KU_DIGITAL_SIGNATURE) == 0) return Deny("leaf keyUsage lacks digitalSignature");
  if ((usage & KU_KEY_CERT_SIGN) != 0) return Deny("leaf keyUsage has keyCertSign");
  if ((usage & KU_CRL_SIGN) != 0) return Deny("leaf keyUsage has cRLSign");
  if (bundle.authorities.empty()) {
    return Deny("the bundle of " + bundle.trust_domain.name() + " has no X.509 authorities");
  }

  X509StorePtr store(X509_STORE_new());
  std::unique_ptr<STACK_OF(X509), UnownedX509StackDeleter> untrusted(sk_X509_new_null());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx) return OpenSSLError(Code::kInternal, "allocating X.509 store");
  for (const auto& authority : bundle.authorities) {
    if (X509_STORE_add_cert(store.get(), authority.get()) != 1) {
      return OpenSSLError(Code::kInternal, "adding bundle authority to X.509 store");
    }
  }
  for (size_t i = 1; i < chain.size(); ++i) {
    if (sk_X509_push(untrusted.get(), chain[i]) <= 0) {
      return OpenSSLError(Code::kInternal, "collecting intermediates");
    }
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()) != 1) {
    return OpenSSLError(Code::kInternal, "initialising chain verification");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, std::chrono::system_clock::to_time_t(now));
  // Every bundle authority is a trust anchor, root or not, as in go-spiffe.
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    const int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    ClearOpenSSLErrors();
    return Deny("chain of " + id->str() + " does not verify against the bundle of " +
                bundle.trust_domain.name() + ": " + X509_verify_cert_error_string(err) +
                " (certificate " + std::to_string(depth) + " of the chain)");
  }
  return id;
}

}  // namespace sigil
