#include "serverd/ca/ca_manager.h"

#include <algorithm>

#include "core/base64url.h"
#include "core/log.h"
#include "core/openssl_util.h"
#include "hw/soft_key_store.h"

namespace sigil::serverd {

namespace {

int64_t ToUnix(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
TimePoint FromUnix(int64_t s) { return TimePoint(std::chrono::seconds(s)); }

// SPIRE's thresholds: prepare at 1/2 of the active CA's life, activate at 5/6.
TimePoint PrepareAt(const CaSlot& s) { return FromUnix(s.not_before + (s.not_after - s.not_before) / 2); }
TimePoint ActivateAt(const CaSlot& s) { return FromUnix(s.not_before + (s.not_after - s.not_before) * 5 / 6); }

std::string JwtLabelFor(const std::string& ca_label) { return "jwt" + ca_label.substr(2); }  // ca-… -> jwt-…

// Retired CAs stay in the bundle until they expire or both their authorities are revoked; then
// the slot is done with, whichever replica made it.
bool DoneWith(const CaSlot& record, TimePoint now) {
  return FromUnix(record.not_after) <= now || (record.x509_revoked && record.jwt_revoked);
}

// A slot's authorities in `bundle`, own or another replica's alike: each not revoked, with its
// taint. `jwt_key` null: a slot recorded without its JWT key's public half.
void AddAuthorities(TrustBundle& bundle, const CaSlot& record, X509* cert, EVP_PKEY* jwt_key,
                    const std::string& jwt_key_id) {
  if (!record.x509_revoked) {
    bundle.x509.Add(cert);
    if (record.x509_tainted) bundle.tainted_x509_authorities.insert(X509AuthorityId(cert));
  }
  if (!record.jwt_revoked && jwt_key != nullptr) {
    bundle.jwt.authorities[jwt_key_id] = JwtAuthority(UpRef(jwt_key), FromUnix(record.not_after));
    if (record.jwt_tainted) bundle.tainted_jwt_authorities.insert(jwt_key_id);
  }
}

// How often the other replicas' slots are read when no change was announced.
constexpr std::chrono::seconds kPeerResync{30};

// Whether two readings of the other replicas' slots put the same authorities in the bundle.
template <typename Peers>
bool SamePeerAuthorities(const Peers& a, const Peers& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    const CaSlot& p = x.record;
    const CaSlot& q = y.record;
    return p.id == q.id && p.x509_tainted == q.x509_tainted && p.x509_revoked == q.x509_revoked &&
           p.jwt_tainted == q.jwt_tainted && p.jwt_revoked == q.jwt_revoked;
  });
}

}  // namespace

Result<std::string> JwtKeyId(EVP_PKEY* public_key) {
  SIGIL_ASSIGN_OR_RETURN(Bytes der, PublicKeyToDer(public_key));
  const Bytes digest = Sha256(der);
  return Base64UrlEncode(std::span<const uint8_t>(digest.data(), 24));
}

CaManager::CaManager(CaManagerOptions options, hw::KeyStore& keys, Datastore& store, MetricsRegistry* metrics)
    : options_(std::move(options)), keys_(keys), store_(store) {
  if (metrics == nullptr) return;
  const MetricsRegistry::Labels td = {{"trust_domain_id", options_.trust_domain.name()}};
  metrics_.x509_ca_activated =
      &metrics->GetCounter("spire_server_ca_manager_x509_ca_activate", "X.509 CAs activated by a rotation");
  metrics_.jwt_key_activated =
      &metrics->GetCounter("spire_server_manager_jwt_key_activate", "JWT keys activated by a rotation");
  metrics_.x509_svids_signed =
      &metrics->GetCounter("spire_server_server_ca_sign_x509_svid", "X509-SVIDs signed, agents' and workloads'");
  metrics_.jwt_svids_signed = &metrics->GetCounter("spire_server_server_ca_sign_jwt_svid", "JWT-SVIDs signed");
  metrics_.intermediates_signed = &metrics->GetCounter("spire_server_server_ca_sign_x509_ca_svid",
                                                       "Delegated intermediate CAs signed (ca_mode delegated)");
  metrics_.x509_ca_expiration = &metrics->GetGauge("spire_server_manager_x509_ca_rotate_expiration",
                                                   "When the active X.509 CA expires, in Unix seconds", td);
  metrics_.x509_ca_ttl = &metrics->GetGauge("spire_server_manager_x509_ca_rotate_ttl",
                                            "The active X.509 CA's time left when it was published, in seconds", td);
  const std::string expiry = "sigil_server_ca_expiry_timestamp_seconds";
  const std::string help = "When each authority serverd signs with expires, in Unix seconds";
  metrics_.x509_ca_expiry = &metrics->GetGauge(expiry, help, {{"authority", "x509_ca"}});
  metrics_.jwt_key_expiry = &metrics->GetGauge(expiry, help, {{"authority", "jwt_key"}});
  if (options_.mode == CaMode::kDelegated) {
    metrics_.delegated_ca_expiry = &metrics->GetGauge(expiry, help, {{"authority", "delegated_x509_ca"}});
  }
}

void CaManager::CountSignedX509Svids(uint64_t count) const {
  if (metrics_.x509_svids_signed != nullptr) metrics_.x509_svids_signed->Add(count);
}

void CaManager::CountSignedJwtSvid() const {
  if (metrics_.jwt_svids_signed != nullptr) metrics_.jwt_svids_signed->Add();
}

void CaManager::PublishExpiryMetrics(TimePoint now) {
  if (metrics_.x509_ca_expiration == nullptr) return;
  const int64_t not_after = Active()->record.not_after;
  metrics_.x509_ca_expiration->Set(not_after);
  metrics_.x509_ca_ttl->Set(not_after - ToUnix(now));
  metrics_.x509_ca_expiry->Set(not_after);
  metrics_.jwt_key_expiry->Set(not_after);  // a slot's JWT key lives as long as its CA
  if (metrics_.delegated_ca_expiry != nullptr && intermediate_ != nullptr) {
    metrics_.delegated_ca_expiry->Set(ToUnix(intermediate_->not_after()));
  }
}

Result<CaManager::Slot> CaManager::LoadSlot(const CaSlot& record) {
  SIGIL_ASSIGN_OR_RETURN(std::shared_ptr<Signer> key, keys_.FindKey(record.key_label));
  SIGIL_ASSIGN_OR_RETURN(X509Ptr cert, CertFromDer({reinterpret_cast<const uint8_t*>(record.certificate_der.data()),
                                                    record.certificate_der.size()}));
  std::vector<X509Ptr> chain;
  chain.push_back(std::move(cert));
  SIGIL_ASSIGN_OR_RETURN(X509Ca ca, X509Ca::FromChain(options_.trust_domain, std::move(chain), key));
  SIGIL_ASSIGN_OR_RETURN(std::shared_ptr<Signer> jwt_key, keys_.FindKey(JwtLabelFor(record.key_label)));
  SIGIL_ASSIGN_OR_RETURN(std::string kid, JwtKeyId(jwt_key->public_key()));
  return Slot{record, std::make_shared<const X509Ca>(std::move(ca)), jwt_key, kid};
}

Result<CaManager::Slot> CaManager::NewSlot(TimePoint now, CaSlotState state) {
  // Labels carry the creation time, so a slot's keys are never confused with an earlier one's.
  std::string label = "ca-" + std::to_string(ToUnix(now));
  for (int n = 1; keys_.FindKey(label).ok(); ++n) label = "ca-" + std::to_string(ToUnix(now)) + "-" + std::to_string(n);
  SIGIL_ASSIGN_OR_RETURN(std::shared_ptr<Signer> key, keys_.CreateKey(label, options_.key_type));
  SIGIL_ASSIGN_OR_RETURN(std::shared_ptr<Signer> jwt_key, keys_.CreateKey(JwtLabelFor(label), options_.key_type));
  CaOptions ca_options;
  ca_options.subject = options_.subject;
  ca_options.ttl = options_.ca_ttl;
  ca_options.now = now;
  SIGIL_ASSIGN_OR_RETURN(X509Ca ca, X509Ca::NewRoot(options_.trust_domain, key, ca_options));
  CaSlot record;
  record.key_label = label;
  record.certificate_der.assign(ca.cert_der().begin(), ca.cert_der().end());
  record.not_before = ToUnix(ca.not_before());
  record.not_after = ToUnix(ca.not_after());
  record.state = state;
  record.replica = options_.replica;
  SIGIL_ASSIGN_OR_RETURN(Bytes jwt_public_key, PublicKeyToDer(jwt_key->public_key()));
  record.jwt_public_key_der.assign(jwt_public_key.begin(), jwt_public_key.end());
  SIGIL_ASSIGN_OR_RETURN(record, store_.AddCaSlot(record));
  SIGIL_ASSIGN_OR_RETURN(std::string kid, JwtKeyId(jwt_key->public_key()));
  LogInfo("CA prepared", {{"slot", std::to_string(record.id)}, {"key_label", label},
                          {"not_after", std::to_string(record.not_after)}});
  return Slot{record, std::make_shared<const X509Ca>(std::move(ca)), jwt_key, kid};
}

CaManager::Slot* CaManager::Active() {
  for (auto& slot : slots_) {
    if (slot.record.state == CaSlotState::kActive) return &slot;
  }
  return nullptr;
}

CaManager::Slot* CaManager::Prepared() {
  for (auto& slot : slots_) {
    if (slot.record.state == CaSlotState::kPrepared) return &slot;
  }
  return nullptr;
}

Status CaManager::Start(TimePoint now) {
  std::lock_guard lock(mutex_);
  SIGIL_ASSIGN_OR_RETURN(std::vector<CaSlot> records, store_.ListCaSlots());
  for (const CaSlot& record : records) {
    ++sequence_;
    if (record.replica != options_.replica || DoneWith(record, now)) continue;
    auto slot = LoadSlot(record);
    if (!slot.ok()) {
      return std::move(slot).status().AddContext(
          "loading CA slot " + std::to_string(record.id) + " (key " + record.key_label + ") of replica '" +
          options_.replica + "' (does another serverd use this datastore with the same datastore.replica_name?)");
    }
    slots_.push_back(std::move(*slot));
  }
  UsePeers(std::move(records), now);
  peers_read_at_ = now;
  // Several active records mean a crash between activating one and retiring the other: the
  // newest wins.
  Slot* active = nullptr;
  for (auto& slot : slots_) {
    if (slot.record.state == CaSlotState::kActive) {
      if (active != nullptr) active->record.state = CaSlotState::kPrepared;
      active = &slot;
    }
  }
  if (active == nullptr) {
    if (Slot* prepared = Prepared()) {
      SIGIL_RETURN_IF_ERROR(store_.SetCaSlotState(prepared->record.id, CaSlotState::kActive));
      prepared->record.state = CaSlotState::kActive;
    } else {
      SIGIL_ASSIGN_OR_RETURN(Slot first, NewSlot(now, CaSlotState::kActive));
      slots_.push_back(std::move(first));
    }
    ++sequence_;
  }
  if (options_.mode == CaMode::kDelegated) SIGIL_RETURN_IF_ERROR(RenewIntermediate(now));
  SIGIL_RETURN_IF_ERROR(Publish());
  PublishExpiryMetrics(now);
  LogInfo("CA active", {{"slot", std::to_string(Active()->record.id)},
                        {"mode", options_.mode == CaMode::kDelegated ? "delegated" : "direct"}});
  return Status::Ok();
}

Result<bool> CaManager::ReadPeers(TimePoint now) {
  SIGIL_ASSIGN_OR_RETURN(std::vector<CaSlot> records, store_.ListCaSlots());
  return UsePeers(std::move(records), now);
}

bool CaManager::UsePeers(std::vector<CaSlot> records, TimePoint now) {
  std::vector<PeerSlot> peers;
  for (CaSlot& record : records) {
    if (record.replica == options_.replica || DoneWith(record, now)) continue;
    PeerSlot peer;
    auto cert = CertFromDer(AsBytes(record.certificate_der));
    if (!cert.ok()) {
      LogWarn("another replica's CA in the journal cannot be read; it is left out of the bundle",
              {{"slot", std::to_string(record.id)}, {"replica", record.replica}, {"error", cert.status().ToString()}});
      continue;
    }
    peer.cert = std::move(*cert);
    if (!record.jwt_public_key_der.empty()) {
      auto key = PublicKeyFromDer(AsBytes(record.jwt_public_key_der));
      auto kid = key.ok() ? JwtKeyId(key->get()) : Result<std::string>(key.status());
      if (kid.ok()) {
        peer.jwt_public_key = std::move(*key);
        peer.jwt_key_id = std::move(*kid);
      }
    }
    peer.record = std::move(record);
    peers.push_back(std::move(peer));
  }
  if (SamePeerAuthorities(peers_, peers)) return false;
  peers_ = std::move(peers);
  return true;
}

Status CaManager::RenewIntermediate(TimePoint now) {
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, hw::GenerateSoftKey(options_.key_type));
  SIGIL_ASSIGN_OR_RETURN(std::shared_ptr<Signer> signer, hw::MakeSoftSigner(std::move(key)));
  CaOptions ca_options;
  ca_options.subject = options_.subject;
  ca_options.ttl = options_.delegated_ca_ttl;
  ca_options.now = now;
  ca_options.path_len = 0;
  SIGIL_ASSIGN_OR_RETURN(X509Ca intermediate, Active()->ca->NewIntermediate(signer, ca_options));
  intermediate_ = std::make_shared<const X509Ca>(std::move(intermediate));
  if (metrics_.intermediates_signed != nullptr) metrics_.intermediates_signed->Add();
  return Status::Ok();
}

Result<bool> CaManager::Tick(TimePoint now) {
  std::lock_guard lock(mutex_);
  bool changed = false;
  Slot* active = Active();
  if (Prepared() == nullptr && now >= PrepareAt(active->record)) {
    SIGIL_ASSIGN_OR_RETURN(Slot next, NewSlot(now, CaSlotState::kPrepared));
    slots_.push_back(std::move(next));
    ++sequence_;
    changed = true;
    active = Active();
  }
  if (Prepared() != nullptr && now >= ActivateAt(active->record)) {
    SIGIL_RETURN_IF_ERROR(ActivatePrepared(now));
    changed = true;
  }
  if (peers_stale_.exchange(false) || now >= peers_read_at_ + kPeerResync) {
    peers_read_at_ = now;
    // Not fatal to the rotation: a store that cannot be read now is read again at the next
    // announcement or resync.
    auto peers_changed = ReadPeers(now);
    if (!peers_changed.ok()) {
      peer_read_failures_.Failed({{"error", peers_changed.status().ToString()}});
    } else {
      peer_read_failures_.Succeeded("the other replicas' CAs are read again");
      if (*peers_changed) {
        ++sequence_;
        changed = true;
      }
    }
  }
  const size_t before = slots_.size() + peers_.size();
  std::erase_if(slots_, [&](const Slot& s) { return FromUnix(s.record.not_after) <= now; });
  std::erase_if(peers_, [&](const PeerSlot& s) { return FromUnix(s.record.not_after) <= now; });
  if (slots_.size() + peers_.size() != before) {
    ++sequence_;
    changed = true;
  }
  if (options_.mode == CaMode::kDelegated && intermediate_ != nullptr &&
      now >= intermediate_->not_before() + (intermediate_->not_after() - intermediate_->not_before()) / 2) {
    SIGIL_RETURN_IF_ERROR(RenewIntermediate(now));
    changed = true;
  }
  if (changed) {
    SIGIL_RETURN_IF_ERROR(Publish());
    PublishExpiryMetrics(now);
  }
  return changed;
}

Status CaManager::ActivatePrepared(TimePoint now) {
  Slot* active = Active();
  Slot* prepared = Prepared();
  // Activate the new one first: a crash in between leaves two active slots, which Start
  // resolves, never none.
  SIGIL_RETURN_IF_ERROR(store_.SetCaSlotState(prepared->record.id, CaSlotState::kActive));
  SIGIL_RETURN_IF_ERROR(store_.SetCaSlotState(active->record.id, CaSlotState::kRetired));
  prepared->record.state = CaSlotState::kActive;
  // The old CA stays in the bundle until it expires or is revoked: SVIDs it signed are still
  // out there.
  active->record.state = CaSlotState::kRetired;
  if (metrics_.x509_ca_activated != nullptr) {
    metrics_.x509_ca_activated->Add();
    metrics_.jwt_key_activated->Add();
  }
  LogInfo("CA activated", {{"slot", std::to_string(prepared->record.id)}});
  if (options_.mode == CaMode::kDelegated) SIGIL_RETURN_IF_ERROR(RenewIntermediate(now));
  ++sequence_;
  return Status::Ok();
}

Status CaManager::Publish() {
  auto next = std::make_shared<Current>(options_.trust_domain);
  Slot* active = Active();
  next->issuer = options_.mode == CaMode::kDelegated ? intermediate_ : active->ca;
  next->jwt_key = active->jwt_key;
  next->jwt_key_id = active->jwt_key_id;
  for (const Slot& slot : slots_) {
    AddAuthorities(next->bundle, slot.record, slot.ca->cert(), slot.jwt_key->public_key(), slot.jwt_key_id);
  }
  for (const PeerSlot& peer : peers_) {
    AddAuthorities(next->bundle, peer.record, peer.cert.get(), peer.jwt_public_key.get(), peer.jwt_key_id);
  }
  next->bundle.sequence = sequence_;
  SIGIL_ASSIGN_OR_RETURN(std::string jwks, TrustBundleToJwks(next->bundle));
  SIGIL_RETURN_IF_ERROR(store_.SetBundle({options_.trust_domain.name(), jwks, false, 0}));
  current_.Set(std::move(next));
  return Status::Ok();
}

std::shared_ptr<const CaManager::Current> CaManager::current() const {
  return current_.Current();
}

TimePoint CaManager::NextEvent() const {
  std::lock_guard lock(mutex_);
  TimePoint next = TimePoint::max();
  const bool prepared = std::any_of(slots_.begin(), slots_.end(),
                                    [](const Slot& s) { return s.record.state == CaSlotState::kPrepared; });
  for (const Slot& slot : slots_) {
    if (slot.record.state == CaSlotState::kActive) {
      next = std::min(next, prepared ? ActivateAt(slot.record) : PrepareAt(slot.record));
    }
    next = std::min(next, FromUnix(slot.record.not_after));
  }
  for (const PeerSlot& peer : peers_) next = std::min(next, FromUnix(peer.record.not_after));
  if (intermediate_ != nullptr) {
    next = std::min(next, intermediate_->not_before() + (intermediate_->not_after() - intermediate_->not_before()) / 2);
  }
  return next;
}

namespace {

std::string_view KindName(CaManager::AuthorityKind kind) {
  return kind == CaManager::AuthorityKind::kX509 ? "X.509" : "JWT";
}

}  // namespace

std::string CaManager::AuthorityIdOf(const Slot& slot, AuthorityKind kind) {
  return kind == AuthorityKind::kX509 ? X509AuthorityId(slot.ca->cert()) : slot.jwt_key_id;
}

CaManager::AuthorityState CaManager::StateOf(const Slot& slot, AuthorityKind kind) {
  return {AuthorityIdOf(slot, kind), slot.record.not_after, Tainted(slot, kind)};
}

bool CaManager::Tainted(const Slot& slot, AuthorityKind kind) {
  return kind == AuthorityKind::kX509 ? slot.record.x509_tainted : slot.record.jwt_tainted;
}

bool CaManager::Revoked(const Slot& slot, AuthorityKind kind) {
  return kind == AuthorityKind::kX509 ? slot.record.x509_revoked : slot.record.jwt_revoked;
}

CaManager::AuthorityStates CaManager::Authorities(AuthorityKind kind) const {
  std::lock_guard lock(mutex_);
  AuthorityStates states;
  for (const Slot& slot : slots_) {  // oldest first: the last retired one is the old one
    if (Revoked(slot, kind)) continue;
    switch (slot.record.state) {
      case CaSlotState::kActive: states.active = StateOf(slot, kind); break;
      case CaSlotState::kPrepared: states.prepared = StateOf(slot, kind); break;
      case CaSlotState::kRetired: states.old = StateOf(slot, kind); break;
    }
  }
  return states;
}

Result<CaManager::Slot*> CaManager::FindAuthority(AuthorityKind kind, std::string_view authority_id) {
  if (authority_id.empty()) return InvalidArgumentError("no authority ID provided");
  for (Slot& slot : slots_) {
    if (!Revoked(slot, kind) && AuthorityIdOf(slot, kind) == authority_id) return &slot;
  }
  return NotFoundError("no " + std::string(KindName(kind)) + " authority " + std::string(authority_id) + " in the bundle");
}

Status CaManager::PublishChange() {
  ++sequence_;
  return Publish();
}

Result<CaManager::AuthorityState> CaManager::Prepare(AuthorityKind kind, TimePoint now) {
  std::lock_guard lock(mutex_);
  if (Slot* prepared = Prepared()) {
    // Dropped as a revoked slot is: it signed nothing, and its keys are never used again.
    SIGIL_RETURN_IF_ERROR(store_.MarkCaSlot(prepared->record.id, CaSlotMark::kX509Revoked));
    SIGIL_RETURN_IF_ERROR(store_.MarkCaSlot(prepared->record.id, CaSlotMark::kJwtRevoked));
    LogInfo("prepared CA replaced", {{"slot", std::to_string(prepared->record.id)}});
    const int64_t dropped = prepared->record.id;
    std::erase_if(slots_, [&](const Slot& s) { return s.record.id == dropped; });
  }
  SIGIL_ASSIGN_OR_RETURN(Slot next, NewSlot(now, CaSlotState::kPrepared));
  slots_.push_back(std::move(next));
  SIGIL_RETURN_IF_ERROR(PublishChange());
  return StateOf(slots_.back(), kind);
}

Result<CaManager::AuthorityState> CaManager::Activate(AuthorityKind kind, std::string_view authority_id,
                                                      TimePoint now) {
  std::lock_guard lock(mutex_);
  if (authority_id.empty()) return InvalidArgumentError("no authority ID provided");
  const Slot* prepared = Prepared();
  if (prepared == nullptr) {
    return Status(Code::kFailedPrecondition,
                  "there is no prepared " + std::string(KindName(kind)) + " authority to activate; prepare one first");
  }
  if (AuthorityIdOf(*prepared, kind) != authority_id) {
    return InvalidArgumentError(std::string(authority_id) + " is not the prepared " + std::string(KindName(kind)) +
                                " authority (" + AuthorityIdOf(*prepared, kind) + "); only a prepared one can be activated");
  }
  SIGIL_RETURN_IF_ERROR(ActivatePrepared(now));
  SIGIL_RETURN_IF_ERROR(Publish());
  PublishExpiryMetrics(now);
  return StateOf(*Active(), kind);
}

Result<CaManager::AuthorityState> CaManager::Taint(AuthorityKind kind, std::string_view authority_id) {
  std::lock_guard lock(mutex_);
  const std::string what = std::string(KindName(kind)) + " authority " + std::string(authority_id);
  SIGIL_ASSIGN_OR_RETURN(Slot* found, FindAuthority(kind, authority_id));
  if (found->record.state == CaSlotState::kActive) {
    return InvalidArgumentError(what + " is the active one and cannot be tainted: prepare and activate another, "
                                "then taint this one");
  }
  if (found->record.state == CaSlotState::kPrepared) {
    return InvalidArgumentError(what + " is prepared, not old: only old authorities can be tainted");
  }
  if (Tainted(*found, kind)) return Status(Code::kFailedPrecondition, what + " is already tainted");
  const bool x509 = kind == AuthorityKind::kX509;
  SIGIL_RETURN_IF_ERROR(store_.MarkCaSlot(found->record.id, x509 ? CaSlotMark::kX509Tainted : CaSlotMark::kJwtTainted));
  (x509 ? found->record.x509_tainted : found->record.jwt_tainted) = true;
  LogWarn("authority tainted; agents replace what it issued", {{"kind", std::string(KindName(kind))},
                                                               {"authority_id", std::string(authority_id)}});
  SIGIL_RETURN_IF_ERROR(PublishChange());
  return StateOf(*found, kind);
}

Result<CaManager::AuthorityState> CaManager::Revoke(AuthorityKind kind, std::string_view authority_id) {
  std::lock_guard lock(mutex_);
  const std::string what = std::string(KindName(kind)) + " authority " + std::string(authority_id);
  SIGIL_ASSIGN_OR_RETURN(Slot* found, FindAuthority(kind, authority_id));
  if (found->record.state != CaSlotState::kRetired) {
    return InvalidArgumentError(what + " is " + std::string(CaSlotStateName(found->record.state)) +
                                ": only an old authority can be revoked");
  }
  if (!Tainted(*found, kind)) {
    return Status(Code::kFailedPrecondition, what + " is not tainted: taint it first, so that agents replace what it "
                                                    "issued, then revoke it");
  }
  const bool x509 = kind == AuthorityKind::kX509;
  SIGIL_RETURN_IF_ERROR(store_.MarkCaSlot(found->record.id, x509 ? CaSlotMark::kX509Revoked : CaSlotMark::kJwtRevoked));
  const AuthorityState state = StateOf(*found, kind);
  (x509 ? found->record.x509_revoked : found->record.jwt_revoked) = true;
  if (found->record.x509_revoked && found->record.jwt_revoked) {
    const int64_t dropped = found->record.id;
    std::erase_if(slots_, [&](const Slot& s) { return s.record.id == dropped; });
  }
  LogWarn("authority revoked; it left the bundle", {{"kind", std::string(KindName(kind))},
                                                    {"authority_id", std::string(authority_id)}});
  SIGIL_RETURN_IF_ERROR(PublishChange());
  return state;
}

}  // namespace sigil::serverd
