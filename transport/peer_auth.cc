#include "transport/peer_auth.h"

#include <openssl/pem.h>

#include <algorithm>

namespace sigil::transport {

Result<std::shared_ptr<const TrustBundle>> TrustBundle::Create(TrustDomain trust_domain,
                                                               const std::vector<X509*>& roots) {
  if (roots.empty()) {
    return InvalidArgumentError("trust bundle for " + trust_domain.name() + " has no roots");
  }
  X509StorePtr store(X509_STORE_new());
  if (!store) return OpenSSLError(Code::kInternal, "allocating X509_STORE");
  for (X509* root : roots) {
    if (X509_STORE_add_cert(store.get(), root) != 1) {
      return OpenSSLError(Code::kInvalidArgument, "adding a root to the trust bundle");
    }
  }
  return std::shared_ptr<const TrustBundle>(
      new TrustBundle(std::move(trust_domain), std::move(store), roots.size()));
}

Result<std::shared_ptr<const TrustBundle>> TrustBundle::FromPem(TrustDomain trust_domain,
                                                                std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<X509Ptr> certs;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    certs.push_back(std::move(cert));
  }
  ClearOpenSSLErrors();  // the read that ends the loop always queues "no start line"
  std::vector<X509*> raw;
  for (auto& c : certs) raw.push_back(c.get());
  return Create(std::move(trust_domain), raw);
}

Result<SpiffeId> SpiffeIdFromCertificate(X509* cert) {
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return InvalidArgumentError("certificate has no URI SAN (no SAN extension)");
  std::string uri;
  int uri_count = 0;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    ++uri_count;
    const ASN1_IA5STRING* s = name->d.uniformResourceIdentifier;
    uri.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
               static_cast<size_t>(ASN1_STRING_length(s)));
  }
  if (uri_count != 1) {
    return InvalidArgumentError("X509-SVID must have exactly one URI SAN, found " +
                                std::to_string(uri_count));
  }
  auto id = SpiffeId::Parse(uri);
  if (!id.ok()) return std::move(id.status()).AddContext("in the certificate's URI SAN");
  return id;
}

Result<SpiffeId> VerifyX509SvidChain(X509* leaf, STACK_OF(X509) * intermediates,
                                     const TrustBundle& bundle) {
  if (leaf == nullptr) return UnauthenticatedError("peer presented no certificate");
  if (X509_check_ca(leaf) != 0) {
    return UnauthenticatedError("peer's leaf certificate is a CA (X509-SVID must have CA:false)");
  }
  auto id = SpiffeIdFromCertificate(leaf);
  if (!id.ok()) {
    return Status(Code::kUnauthenticated, id.status().message());
  }
  if (!id->MemberOf(bundle.trust_domain())) {
    return UnauthenticatedError("peer " + id->str() + " is not in trust domain " +
                                bundle.trust_domain().name() + " of the trust bundle");
  }
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), bundle.store(), leaf, intermediates) != 1) {
    return OpenSSLError(Code::kInternal, "preparing certificate verification");
  }
  // The peer is a TLS client or server alike; SPIFFE says nothing of the purpose beyond EKU,
  // which X509-SVIDs carry for both directions.
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ClearOpenSSLErrors();
    return UnauthenticatedError("peer " + id->str() + " certificate does not verify against the " +
                                bundle.trust_domain().name() +
                                " bundle: " + X509_verify_cert_error_string(err));
  }
  return id;
}

Authorizer AuthorizeAny() {
  return [](const SpiffeId&) { return Status::Ok(); };
}

Authorizer AuthorizeMemberOf(TrustDomain trust_domain) {
  return [td = std::move(trust_domain)](const SpiffeId& peer) {
    if (peer.MemberOf(td)) return Status::Ok();
    return PermissionDeniedError("peer " + peer.str() + " is not a member of " + td.name());
  };
}

Authorizer AuthorizeId(SpiffeId id) {
  return [want = std::move(id)](const SpiffeId& peer) {
    if (peer == want) return Status::Ok();
    return PermissionDeniedError("peer " + peer.str() + " is not " + want.str());
  };
}

Authorizer AuthorizeOneOf(std::vector<SpiffeId> ids) {
  std::sort(ids.begin(), ids.end());
  return [ids = std::move(ids)](const SpiffeId& peer) {
    if (std::binary_search(ids.begin(), ids.end(), peer)) return Status::Ok();
    return PermissionDeniedError("peer " + peer.str() + " is not among the " +
                                 std::to_string(ids.size()) + " allowed IDs");
  };
}

}  // namespace sigil::transport
