// The CA's life, as SPIRE's CA manager lives it: at start, load the active CA from the journal
// (its key from the key store, its certificate from the datastore) or make the first one; at
// half of the active CA's life prepare the next (a new key in the key store and a new root),
// publish it in the bundle at once, activate it at five sixths, and drop a CA from the bundle
// when it expires. Each CA slot has an X.509 key and a JWT key, both in the key store.
//
// In `delegated` mode the active CA signs a short-lived intermediate whose key lives only in
// memory; SVIDs are issued by the intermediate, at software speed, and carry it in their chain.
// It is renewed at half its life and whenever the active CA changes.
//
// An operator drives the same life by hand with SPIRE's local authority commands (Prepare,
// Activate, Taint, Revoke): an authority is one of a slot's two keys, named by its ID (the X.509
// CA's subject key ID in hex, the JWT key's key ID). A slot's two keys are prepared and
// activated together, because a slot holds both; each is tainted and revoked on its own. A
// tainted authority stays in the bundle, marked, and agents replace what it issued at once; a
// revoked one leaves the bundle.
//
// Several replicas on one datastore each run a CaManager over their own slots of the shared
// journal (CaSlot::replica), with keys in their own key store, and sign with their own active
// CA; each publishes every replica's CAs (the peers' certificates and JWT keys read from the
// journal), so an SVID from any replica verifies with the bundle of any other. Peers' slots are
// read again when the journal announces a change (JournalChanged) and every 30 s besides.
//
// A crash at any point leaves a journal the next start can use: keys are made before the slot
// that names them is written, and a slot's state and marks only move forward.
//
// Thread safety: current() may be called from any thread; the other methods from any thread
// too, one at a time (a mutex): the rotation thread ticks while the admin API's workers call the
// local authority methods.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "core/failure_log.h"
#include "core/metrics.h"
#include "core/swappable.h"
#include "core/trust_bundle.h"
#include "core/x509_ca.h"
#include "hw/key_store.h"
#include "serverd/datastore/datastore.h"
#include "serverd/server_config.h"

namespace sigil::serverd {

struct CaManagerOptions {
  TrustDomain trust_domain;
  KeyType key_type = KeyType::kEcP256;
  std::chrono::seconds ca_ttl{86400};
  SubjectName subject{.country = "US", .organization = "SPIFFE"};
  CaMode mode = CaMode::kDirect;
  std::chrono::seconds delegated_ca_ttl{600};
  std::string replica;  // whose slots of the journal are this manager's (ServerConfig::replica_name)
};

class CaManager {
 public:
  // What issuing needs, consistent at one instant.
  struct Current {
    std::shared_ptr<const X509Ca> issuer;  // the active CA, or its delegated intermediate
    std::shared_ptr<Signer> jwt_key;
    std::string jwt_key_id;
    TrustBundle bundle;
    explicit Current(TrustDomain td) : bundle(std::move(td)) {}
  };

  CaManager(CaManagerOptions options, hw::KeyStore& keys, Datastore& store, MetricsRegistry* metrics = nullptr);

  Status Start(TimePoint now);

  // Prepares, activates and retires as `now` passes the thresholds; renews the delegated
  // intermediate. Returns true when the bundle or the issuer changed.
  Result<bool> Tick(TimePoint now);

  std::shared_ptr<const Current> current() const;

  // When Tick next has something to do.
  TimePoint NextEvent() const;

  // Another replica may have changed its slots: the next Tick reads them. Any thread.
  void JournalChanged() { peers_stale_ = true; }

  // SPIRE's local authority API. `old` is the newest retired authority not revoked; Taint and
  // Revoke also take an older one still in the bundle.
  enum class AuthorityKind { kX509, kJwt };
  struct AuthorityState {
    std::string authority_id;
    int64_t expires_at = 0;  // Unix seconds
    bool tainted = false;
  };
  struct AuthorityStates {
    std::optional<AuthorityState> active;
    std::optional<AuthorityState> prepared;
    std::optional<AuthorityState> old;
  };
  AuthorityStates Authorities(AuthorityKind kind) const;
  // A new slot, published in the bundle at once. A prepared slot not yet activated is dropped
  // (it has signed nothing).
  Result<AuthorityState> Prepare(AuthorityKind kind, TimePoint now);
  // The prepared slot becomes the issuer and the active one old; `authority_id` must name the
  // prepared authority (FailedPrecondition when none is, InvalidArgument when it is another).
  Result<AuthorityState> Activate(AuthorityKind kind, std::string_view authority_id, TimePoint now);
  // InvalidArgument for the active or the prepared authority; NotFound for one not in the
  // bundle; FailedPrecondition when already tainted.
  Result<AuthorityState> Taint(AuthorityKind kind, std::string_view authority_id);
  // Only a tainted old authority, once agents had the time to replace what it issued.
  Result<AuthorityState> Revoke(AuthorityKind kind, std::string_view authority_id);

  // SPIRE's spire_server_server_ca_sign_x509_svid and _jwt_svid: what was signed with this
  // CA's keys, by the signing pipeline or the admin API's mints. Any thread.
  void CountSignedX509Svids(uint64_t count) const;
  void CountSignedJwtSvid() const;

 private:
  struct Slot {
    CaSlot record;
    std::shared_ptr<const X509Ca> ca;
    std::shared_ptr<Signer> jwt_key;
    std::string jwt_key_id;
  };

  // Another replica's slot: what its bundle entries need, read from the journal alone.
  struct PeerSlot {
    CaSlot record;
    X509Ptr cert;
    EvpPkeyPtr jwt_public_key;  // null for a slot recorded without it
    std::string jwt_key_id;
  };

  Result<Slot> LoadSlot(const CaSlot& record);
  // Reads the other replicas' slots from the journal; true when what the bundle holds of them
  // changed.
  Result<bool> ReadPeers(TimePoint now);
  // The same from the journal's `records`, already read.
  bool UsePeers(std::vector<CaSlot> records, TimePoint now);
  Result<Slot> NewSlot(TimePoint now, CaSlotState state);
  Status RenewIntermediate(TimePoint now);
  Status ActivatePrepared(TimePoint now);
  Status Publish();
  Slot* Active();
  Slot* Prepared();
  // The slot of a named authority not revoked: InvalidArgument for no ID, NotFound for one
  // not in the bundle.
  Result<Slot*> FindAuthority(AuthorityKind kind, std::string_view authority_id);
  static std::string AuthorityIdOf(const Slot& slot, AuthorityKind kind);
  static AuthorityState StateOf(const Slot& slot, AuthorityKind kind);
  static bool Revoked(const Slot& slot, AuthorityKind kind);
  static bool Tainted(const Slot& slot, AuthorityKind kind);
  // The bundle and issuer changed outside Tick: a new sequence, published.
  Status PublishChange();

  mutable std::mutex mutex_;
  CaManagerOptions options_;
  hw::KeyStore& keys_;
  Datastore& store_;
  std::vector<Slot> slots_;  // not expired, oldest first; none with both authorities revoked
  std::vector<PeerSlot> peers_;  // other replicas' slots, likewise
  std::atomic<bool> peers_stale_{false};
  TimePoint peers_read_at_{};
  FailureLog peer_read_failures_{LogLevel::kWarn, "reading the other replicas' CAs failed; the bundle keeps those it had",
                                 std::chrono::minutes(1)};
  std::shared_ptr<const X509Ca> intermediate_;
  uint64_t sequence_ = 0;

  void PublishExpiryMetrics(TimePoint now);

  Swappable<Current> current_;
  // All null without a registry. The SPIRE names are spire_server_<what SPIRE's keys say>.
  struct Metrics {
    Counter* x509_ca_activated = nullptr;      // spire_server_ca_manager_x509_ca_activate
    Counter* jwt_key_activated = nullptr;      // spire_server_manager_jwt_key_activate
    Counter* x509_svids_signed = nullptr;      // spire_server_server_ca_sign_x509_svid
    Counter* jwt_svids_signed = nullptr;       // spire_server_server_ca_sign_jwt_svid
    Counter* intermediates_signed = nullptr;   // spire_server_server_ca_sign_x509_ca_svid
    Gauge* x509_ca_expiration = nullptr;       // spire_server_manager_x509_ca_rotate_expiration
    Gauge* x509_ca_ttl = nullptr;              // spire_server_manager_x509_ca_rotate_ttl
    Gauge* x509_ca_expiry = nullptr;           // sigil_server_ca_expiry_timestamp_seconds{authority}
    Gauge* jwt_key_expiry = nullptr;
    Gauge* delegated_ca_expiry = nullptr;
  } metrics_;
};

// A JWT key's ID: stable for the key (derived from its public half), so tokens minted before a
// restart still name a key the bundle has.
Result<std::string> JwtKeyId(EVP_PKEY* public_key);

}  // namespace sigil::serverd
