#include "transport/tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cstdlib>

#include "core/x509_svid.h"

namespace sigil::transport {
namespace {

// Where the verify hook finds the TlsSession it reports to.
int SessionIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void* arg) {
  auto* wire = static_cast<std::vector<uint8_t>*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, wire->data(), static_cast<unsigned>(wire->size()),
                            in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // the client speaks none of our protocols
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

Result<std::shared_ptr<const TlsCredentials>> TlsCredentials::FromPem(std::string_view chain_pem,
                                                                        std::string_view key_pem) {
  auto creds = std::make_shared<TlsCredentials>();
  BioPtr bio(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  creds->leaf.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!creds->leaf) return OpenSSLError(Code::kInvalidArgument, "reading certificate chain PEM");
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    creds->intermediates.emplace_back(cert);
  }
  ClearOpenSSLErrors();
  BioPtr key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  creds->key.reset(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!creds->key) return OpenSSLError(Code::kInvalidArgument, "reading private key PEM");
  return std::shared_ptr<const TlsCredentials>(std::move(creds));
}

TlsContext::~TlsContext() = default;

Result<std::shared_ptr<const TlsContext>> TlsContext::CreateServer(TlsOptions options) {
  if (!options.credentials) return InvalidArgumentError("a TLS server needs a certificate and key");
  if (options.insecure_skip_verify) {
    return InvalidArgumentError("insecure_skip_verify is for clients only");
  }
  return Create(true, std::move(options));
}

Result<std::shared_ptr<const TlsContext>> TlsContext::CreateClient(TlsOptions options) {
  if (!options.peer_bundle && !options.insecure_skip_verify && !options.verify_web_pki) {
    return InvalidArgumentError("a TLS client needs a trust bundle to verify the server");
  }
  if (options.verify_web_pki && options.peer_bundle) {
    return InvalidArgumentError("a TLS client verifies by a trust bundle or by the web PKI, not both");
  }
  return Create(false, std::move(options));
}

Result<std::shared_ptr<const TlsContext>> TlsContext::Create(bool server, TlsOptions options) {
  std::shared_ptr<TlsContext> self(new TlsContext(server, std::move(options)));
  self->ctx_.reset(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  SSL_CTX* ctx = self->ctx_.get();
  if (!ctx) return OpenSSLError(Code::kInternal, "creating SSL_CTX");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
    return OpenSSLError(Code::kInternal, "setting TLS 1.2 cipher suites");
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // A connection's record buffers (some 34 KiB) are freed while it is idle: a serverd holding a
  // fleet's long polls has thousands of connections with nothing to read or write.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // A resumed session skips certificate verification, which would let a peer outlive a bundle
  // rotation that revoked its CA; every connection therefore does a full handshake.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (server) SSL_CTX_set_num_tickets(ctx, 0);

  const TlsOptions& opt = self->options_;
  if (opt.credentials) {
    if (SSL_CTX_use_certificate(ctx, opt.credentials->leaf.get()) != 1) {
      return OpenSSLError(Code::kInvalidArgument, "using the TLS certificate");
    }
    for (const auto& cert : opt.credentials->intermediates) {
      if (SSL_CTX_add1_chain_cert(ctx, cert.get()) != 1) {
        return OpenSSLError(Code::kInvalidArgument, "adding an intermediate certificate");
      }
    }
    if (SSL_CTX_use_PrivateKey(ctx, opt.credentials->key.get()) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      return OpenSSLError(Code::kInvalidArgument, "the private key does not match the certificate");
    }
  }

  for (const auto& proto : opt.alpn) {
    if (proto.empty() || proto.size() > 255) return InvalidArgumentError("bad ALPN name");
    self->alpn_wire_.push_back(static_cast<uint8_t>(proto.size()));
    self->alpn_wire_.insert(self->alpn_wire_.end(), proto.begin(), proto.end());
  }
  if (!self->alpn_wire_.empty()) {
    if (server) {
      SSL_CTX_set_alpn_select_cb(ctx, SelectAlpn, &self->alpn_wire_);
    } else if (SSL_CTX_set_alpn_protos(ctx, self->alpn_wire_.data(),
                                       static_cast<unsigned>(self->alpn_wire_.size())) != 0) {
      return OpenSSLError(Code::kInternal, "setting ALPN");
    }
  }

  if (!server && opt.verify_web_pki) {
    // The system's CA file, read once here, rather than OpenSSL's hashed directory, which it
    // opens again on every verification from whichever thread verifies (and ThreadSanitizer,
    // not seeing that descriptor opened, takes its reused number for a race).
    const char* from_env = std::getenv(X509_get_default_cert_file_env());
    const char* file = from_env != nullptr && *from_env != '\0' ? from_env : X509_get_default_cert_file();
    if (SSL_CTX_load_verify_locations(ctx, file, nullptr) != 1) {
      return OpenSSLError(Code::kFailedPrecondition, std::string("loading the system's CA certificates from ") + file);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else if (opt.peer_bundle) {
    int mode = SSL_VERIFY_PEER | (server && opt.require_peer_certificate ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    SSL_CTX_set_verify(ctx, mode, nullptr);
    // Replaces OpenSSL's own chain building so that each handshake reads the bundle current
    // at that moment and the SPIFFE checks run in the same place.
    SSL_CTX_set_cert_verify_callback(ctx, &TlsContext::VerifyPeer, self.get());
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  return std::shared_ptr<const TlsContext>(std::move(self));
}

int TlsContext::VerifyPeer(X509_STORE_CTX* store_ctx, void* arg) {
  auto* self = static_cast<TlsContext*>(arg);
  SSL* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* session = ssl ? static_cast<TlsSession*>(SSL_get_ex_data(ssl, SessionIndex())) : nullptr;
  auto fail = [&](Status status) {
    X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_CERT_REJECTED);
    if (session) session->verify_error_ = std::move(status);
    return 0;
  };
  std::shared_ptr<const X509Bundle> bundle = self->options_.peer_bundle->Current();
  if (!bundle) return fail(UnauthenticatedError("no trust bundle to verify the peer against"));
  X509* leaf = X509_STORE_CTX_get0_cert(store_ctx);
  if (leaf == nullptr) return fail(UnauthenticatedError("peer presented no certificate"));
  std::vector<X509*> chain = {leaf};
  STACK_OF(X509)* untrusted = X509_STORE_CTX_get0_untrusted(store_ctx);
  for (int i = 0; untrusted != nullptr && i < sk_X509_num(untrusted); ++i) {
    X509* cert = sk_X509_value(untrusted, i);
    if (cert != leaf && X509_cmp(cert, leaf) != 0) chain.push_back(cert);
  }
  auto id = VerifyX509Svid(chain, *bundle);
  if (!id.ok()) return fail(Status(Code::kUnauthenticated, id.status().message()));
  if (Status allowed = self->options_.authorize(*id); !allowed.ok()) return fail(allowed);
  if (session) {
    session->peer_id_ = *id;
    session->peer_serial_ = SerialHex(leaf);
  }
  return 1;
}

Result<std::unique_ptr<TlsSession>> TlsSession::Create(std::shared_ptr<const TlsContext> context,
                                                       std::string server_name) {
  std::unique_ptr<TlsSession> s(new TlsSession());
  s->ssl_.reset(SSL_new(context->ssl_ctx()));
  if (!s->ssl_) return OpenSSLError(Code::kInternal, "creating SSL");
  s->rbio_ = BIO_new(BIO_s_mem());
  s->wbio_ = BIO_new(BIO_s_mem());
  if (!s->rbio_ || !s->wbio_) {
    BIO_free(s->rbio_);
    BIO_free(s->wbio_);
    return OpenSSLError(Code::kInternal, "creating memory BIOs");
  }
  // An empty read BIO means "no data yet", not end of file.
  BIO_set_mem_eof_return(s->rbio_, -1);
  SSL_set_bio(s->ssl_.get(), s->rbio_, s->wbio_);
  SSL_set_ex_data(s->ssl_.get(), SessionIndex(), s.get());
  if (context->is_server()) {
    SSL_set_accept_state(s->ssl_.get());
  } else {
    SSL_set_connect_state(s->ssl_.get());
    if (context->options().verify_web_pki) {
      if (server_name.empty()) return InvalidArgumentError("checking a server by the web PKI needs its host name");
      // An address literal is matched against the certificate's IP addresses, a name against
      // its DNS names.
      X509_VERIFY_PARAM* param = SSL_get0_param(s->ssl_.get());
      const bool named = X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str()) == 1 ||
                         X509_VERIFY_PARAM_set1_host(param, server_name.c_str(), server_name.size()) == 1;
      ClearOpenSSLErrors();
      if (!named) return InvalidArgumentError("'" + server_name + "' is not a host name to check a certificate for");
    }
    if (!server_name.empty()) SSL_set_tlsext_host_name(s->ssl_.get(), server_name.c_str());
  }
  s->context_ = std::move(context);
  return s;
}

Status TlsSession::SslError(int rc, std::string_view what) {
  int err = SSL_get_error(ssl_.get(), rc);
  if (!verify_error_.ok()) {
    ClearOpenSSLErrors();
    return verify_error_;
  }
  if (err == SSL_ERROR_ZERO_RETURN) return UnavailableError("peer closed the TLS session");
  if (const long verified = SSL_get_verify_result(ssl_.get()); !handshake_complete_ && verified != X509_V_OK) {
    ClearOpenSSLErrors();  // OpenSSL's own checks (the web PKI): say which one failed
    return UnauthenticatedError("the peer's certificate was refused: " +
                                std::string(X509_verify_cert_error_string(verified)));
  }
  return OpenSSLError(handshake_complete_ ? Code::kDataLoss : Code::kUnauthenticated, what);
}

Status TlsSession::Start() { return Advance(nullptr); }

Status TlsSession::Advance(std::vector<uint8_t>* plaintext) {
  if (!handshake_complete_) {
    int rc = SSL_do_handshake(ssl_.get());
    if (rc != 1) {
      int err = SSL_get_error(ssl_.get(), rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Status::Ok();
      return SslError(rc, "TLS handshake failed");
    }
    handshake_complete_ = true;
    if (!held_.empty()) {
      std::vector<uint8_t> held;
      held.swap(held_);
      SIGIL_RETURN_IF_ERROR(Send(held));
    }
  }
  if (plaintext == nullptr) return Status::Ok();
  while (true) {
    size_t old = plaintext->size();
    plaintext->resize(old + 16384);
    int n = SSL_read(ssl_.get(), plaintext->data() + old, 16384);
    plaintext->resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
    if (n > 0) continue;
    int err = SSL_get_error(ssl_.get(), n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Status::Ok();
    return SslError(n, "TLS read failed");
  }
}

Status TlsSession::Receive(std::span<const uint8_t> ciphertext, std::vector<uint8_t>* plaintext) {
  if (!ciphertext.empty() &&
      BIO_write(rbio_, ciphertext.data(), static_cast<int>(ciphertext.size())) !=
          static_cast<int>(ciphertext.size())) {
    return OpenSSLError(Code::kInternal, "buffering TLS input");
  }
  return Advance(plaintext);
}

Status TlsSession::Send(std::span<const uint8_t> plaintext) {
  if (plaintext.empty()) return Status::Ok();
  if (!handshake_complete_) {
    held_.insert(held_.end(), plaintext.begin(), plaintext.end());
    return Status::Ok();
  }
  // The write BIO is memory and grows as needed, so SSL_write takes everything at once.
  int rc = SSL_write(ssl_.get(), plaintext.data(), static_cast<int>(plaintext.size()));
  if (rc <= 0) return SslError(rc, "TLS write failed");
  return Status::Ok();
}

void TlsSession::TakeOutput(std::vector<uint8_t>* out) {
  size_t pending = BIO_ctrl_pending(wbio_);
  if (pending == 0) return;
  size_t old = out->size();
  out->resize(old + pending);
  int n = BIO_read(wbio_, out->data() + old, static_cast<int>(pending));
  out->resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
}

bool TlsSession::HasOutput() const { return BIO_ctrl_pending(wbio_) > 0; }

std::string TlsSession::alpn() const {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::string TlsSession::version() const { return SSL_get_version(ssl_.get()); }

}  // namespace sigil::transport
