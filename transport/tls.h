// TLS on the event loop: a TlsSession runs OpenSSL over two memory BIOs, so the socket is only
// ever read and written by libuv and no OpenSSL call can block. TlsContext builds the SSL_CTX
// for a server or a client: TLS 1.3 preferred (1.2 with AEAD suites accepted), ALPN "h2",
// and, when a trust bundle is given, mutual authentication by X509-SVID (see peer_auth.h).
//
// Peer checks run inside OpenSSL's certificate-verify hook against the bundle current at that
// moment, so a rotated bundle applies to the next handshake; an unauthorised peer fails the
// handshake itself and never reaches a handler.
//
// Thread safety: a TlsContext is immutable after creation and may be shared by sessions on
// any number of loops. A TlsSession belongs to one connection on one loop thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/openssl_util.h"
#include "core/spiffe_id.h"
#include "core/status.h"
#include "core/swappable.h"
#include "transport/peer_auth.h"

namespace sigil::transport {

// A certificate chain (leaf first) and its private key; shared, read-only.
struct TlsCredentials {
  X509Ptr leaf;
  std::vector<X509Ptr> intermediates;
  EvpPkeyPtr key;

  static Result<std::shared_ptr<const TlsCredentials>> FromPem(std::string_view chain_pem,
                                                                std::string_view key_pem);
};

struct TlsOptions {
  // Our own certificate; required for servers, optional for clients (needed for mTLS).
  std::shared_ptr<const TlsCredentials> credentials;
  // When set, the peer must present an X509-SVID chaining to this bundle and pass `authorize`.
  // When null, a server asks for no client certificate; a client refuses to connect.
  std::shared_ptr<TrustBundleSource> peer_bundle;
  Authorizer authorize = AuthorizeAny();
  // Servers only: when false, a client may connect without a certificate (it then has no
  // peer ID and the handler decides), but one it does present must still pass the checks.
  // serverd's agent API needs this: an agent attests before it has an SVID.
  bool require_peer_certificate = true;
  std::vector<std::string> alpn = {"h2"};
  // A client that deliberately skips verifying the server (tests, bootstrap before the agent
  // has a bundle). Never set on a server.
  bool insecure_skip_verify = false;
  // Clients only, instead of a peer bundle: the server's certificate chains to the system's CA
  // certificates (OpenSSL's default CA file, which $SSL_CERT_FILE overrides) and names the host
  // given to TlsSession::Create, as a browser checks it (the SPIFFE federation https_web
  // profile).
  bool verify_web_pki = false;
};

class TlsContext {
 public:
  static Result<std::shared_ptr<const TlsContext>> CreateServer(TlsOptions options);
  static Result<std::shared_ptr<const TlsContext>> CreateClient(TlsOptions options);
  ~TlsContext();

  SSL_CTX* ssl_ctx() const { return ctx_.get(); }
  bool is_server() const { return server_; }
  const TlsOptions& options() const { return options_; }

 private:
  TlsContext(bool server, TlsOptions options) : server_(server), options_(std::move(options)) {}
  static Result<std::shared_ptr<const TlsContext>> Create(bool server, TlsOptions options);
  static int VerifyPeer(X509_STORE_CTX* store_ctx, void* arg);

  bool server_;
  TlsOptions options_;
  SslCtxPtr ctx_;
  std::vector<uint8_t> alpn_wire_;
};

// The context a listener hands to each new connection. Set() swaps it — the server's own
// SVID rotated — while established connections keep the context they started with.
// Thread safety: any thread.
using TlsContextSource = Swappable<TlsContext>;

class TlsSession {
 public:
  // `server_name` (client only) is sent as SNI when not empty.
  static Result<std::unique_ptr<TlsSession>> Create(std::shared_ptr<const TlsContext> context,
                                                    std::string server_name = "");

  // Feeds bytes read from the socket; advances the handshake and appends decrypted bytes to
  // `plaintext`. An error is final: send pending output (the alert) and close.
  Status Receive(std::span<const uint8_t> ciphertext, std::vector<uint8_t>* plaintext);
  // Encrypts `plaintext` (held back until the handshake completes).
  Status Send(std::span<const uint8_t> plaintext);
  // Starts a client handshake (ClientHello goes to the pending output).
  Status Start();
  // Appends the bytes that must be written to the socket.
  void TakeOutput(std::vector<uint8_t>* out);
  bool HasOutput() const;

  bool handshake_complete() const { return handshake_complete_; }
  std::string alpn() const;
  // The peer's SPIFFE ID when it presented a verified X509-SVID.
  const std::optional<SpiffeId>& peer_id() const { return peer_id_; }
  // That X509-SVID's serial number, hex as SerialHex writes it; empty without one.
  const std::string& peer_serial() const { return peer_serial_; }
  std::string version() const;

 private:
  TlsSession() = default;
  Status Advance(std::vector<uint8_t>* plaintext);
  Status SslError(int rc, std::string_view what);

  std::shared_ptr<const TlsContext> context_;
  SslPtr ssl_;
  BIO* rbio_ = nullptr;  // owned by ssl_
  BIO* wbio_ = nullptr;  // owned by ssl_
  bool handshake_complete_ = false;
  std::vector<uint8_t> held_;  // plaintext sent before the handshake completed
  std::optional<SpiffeId> peer_id_;  // set by TlsContext's verify hook
  std::string peer_serial_;          // set with peer_id_
  Status verify_error_;              // why the verify hook refused the peer
  friend class TlsContext;
};

}  // namespace sigil::transport
