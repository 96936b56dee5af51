// Datastore: serverd's only durable state — registration entries, attested agents, join
// tokens, trust bundles and the CA journal. SQLite is the embedded default; a PostgreSQL
// implementation of the same interface lets several replicas share one store.
//
// Every write is one transaction: when a call returns OK the change is on disk (a crash or a
// kill -9 afterwards keeps it); when it returns an error nothing was written. Every change to
// an entry takes the next value of one store-wide revision counter, and deleting an entry
// leaves a tombstone with its revision, so agents sync by asking what changed since the
// revision they hold.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/registration_entry.h"
#include "core/selector.h"
#include "core/status.h"

namespace sigil::serverd {

// Which entries a listing or count takes: SPIRE's ListEntries and CountEntries filter. Every
// field set must hold.
struct EntryFilter {
  std::optional<std::string> spiffe_id;
  std::optional<std::string> parent_id;
  std::optional<std::vector<std::string>> parent_ids;  // any of these
  std::optional<SelectorSet> selectors;
  SelectorMatch match = SelectorMatch::kSuperset;  // SPIRE's default for `entry show -selector`
  // Trust domain names; an entry that federates with none never matches, as in SPIRE.
  std::optional<std::vector<std::string>> federates_with;
  SelectorMatch federates_with_match = SelectorMatch::kSuperset;
  // SPIRE's by_downstream: true takes only downstream entries; false filters nothing.
  bool downstream_only = false;
  std::optional<std::string> hint;
};

// Whether `entry` passes the parts of `filter` a store may check after reading its rows:
// selectors, federates_with, downstream and hint (IDs are the query's).
bool EntryMatchesFilter(const RegistrationEntry& entry, const EntryFilter& filter);

struct EntryChanges {
  int64_t revision = 0;  // the store's revision when the changes were read
  std::vector<RegistrationEntry> changed;  // created or updated after the asked revision
  // Deleted, or moved out from under the asked parents, after the asked revision; never an id
  // that `changed` holds.
  std::vector<std::string> removed_ids;
};

struct AttestedAgent {
  std::string spiffe_id;
  std::string attestation_type;  // "join_token", "tpm_devid"
  std::string serial;            // of the agent's current X509-SVID, hex
  int64_t expires_at = 0;        // of that SVID, Unix seconds
  bool banned = false;
  std::vector<Selector> selectors;  // what node attestation learnt about the host
  int64_t created_at = 0;
  int64_t updated_at = 0;
  // The SVID the last renewal was asked with, still accepted until previous_serial_valid_until
  // (Unix seconds) so that calls made while the renewal was answered go through; empty when none.
  std::string previous_serial;
  int64_t previous_serial_valid_until = 0;

  friend bool operator==(const AttestedAgent&, const AttestedAgent&) = default;
};

// Which agents a listing or count takes: SPIRE's ListAgents and CountAgents filter. Every
// field set must hold.
struct AgentFilter {
  std::optional<std::string> attestation_type;
  std::optional<SelectorSet> selectors;
  SelectorMatch match = SelectorMatch::kSuperset;
  std::optional<bool> banned;
  std::optional<bool> can_reattest;
  std::optional<int64_t> expires_before;  // Unix seconds: the agent's SVID expires before it
};

// Whether the agent's attestor proves the same host again without anything spent: tpm_devid
// (the TPM proves it each time) can; a join token works once. SPIRE's can_reattest.
bool AgentCanReattest(const AttestedAgent& agent);

bool AgentMatchesFilter(const AttestedAgent& agent, const AgentFilter& filter);

struct JoinToken {
  std::string spiffe_id;  // optional alias the agent is also known by; empty when none
  int64_t expires_at = 0;
};

struct StoredBundle {
  std::string trust_domain;
  std::string data;  // the SPIFFE bundle (JWKS JSON)
  bool federated = false;
  int64_t updated_at = 0;
};

// A federated bundle as it was held once: what `bundle history` lists, newest first.
struct BundleVersion {
  std::string trust_domain;
  std::string data;  // the SPIFFE bundle (JWKS JSON)
  int64_t stored_at = 0;
};

// A federation relationship made with `serverd federation create` (the config file's
// federates_with are not stored): the trust domain, its bundle endpoint and how that endpoint
// is authenticated.
struct StoredFederationRelationship {
  std::string trust_domain;
  std::string bundle_endpoint_url;
  std::string bundle_endpoint_profile;  // "https_spiffe" or "https_web"
  std::string endpoint_spiffe_id;       // with https_spiffe; empty with https_web

  friend bool operator==(const StoredFederationRelationship&, const StoredFederationRelationship&) = default;
};

enum class CaSlotState { kPrepared, kActive, kRetired };
std::string_view CaSlotStateName(CaSlotState state);

// One CA a server has made: the label of its keys in that server's key store and its
// certificate. Several replicas on one store each keep their own slots (`replica`); each signs
// with its own and publishes everyone's.
struct CaSlot {
  int64_t id = 0;  // assigned by the store, increasing
  std::string key_label;
  std::string certificate_der;
  int64_t not_before = 0;
  int64_t not_after = 0;
  CaSlotState state = CaSlotState::kPrepared;
  std::string replica;  // datastore.replica_name of the serverd whose key store holds the keys
  // The JWT key's public half (SubjectPublicKeyInfo DER), which the other replicas publish; empty
  // in slots recorded before replicas existed.
  std::string jwt_public_key_der;
  // What an operator did to the slot's two authorities (`serverd localauthority x509|jwt
  // taint|revoke`); a mark is never taken back.
  bool x509_tainted = false;
  bool x509_revoked = false;
  bool jwt_tainted = false;
  bool jwt_revoked = false;
};

enum class CaSlotMark { kX509Tainted, kX509Revoked, kJwtTainted, kJwtRevoked };

// What a committed write changed, for those who wait on it: parked entry syncs wait on entries;
// the federated bundles on bundles (and relationships); the CA's bundle on the CA journal, where
// other replicas publish their CAs.
enum class StoreChange { kEntries, kBundles, kCaJournal };
inline constexpr StoreChange kEveryStoreChange[] = {StoreChange::kEntries, StoreChange::kBundles,
                                                    StoreChange::kCaJournal};

// Tells subscribers that a write committed, by this process or, on a shared store, by another
// replica. Only a hint to look again: a subscriber reads the store for what changed. Changes may
// be coalesced, and a store that lost its link to the other replicas reports every kind once it
// is back, as it may have missed some.
//
// Thread safety: any thread. Listeners run on the store's threads, one at a time, and must be
// quick (post to a loop, notify a condition variable); they never call the store or the feed.
class ChangeFeed {
 public:
  using Listener = std::function<void(StoreChange)>;

  // Unsubscribes when destroyed; once its destructor returns, the listener is not running and
  // never runs again.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(ChangeFeed* feed, uint64_t id) : feed_(feed), id_(id) {}
    Subscription(Subscription&& other) noexcept : feed_(std::exchange(other.feed_, nullptr)), id_(other.id_) {}
    Subscription& operator=(Subscription&& other) noexcept;
    ~Subscription();

   private:
    void Reset();

    ChangeFeed* feed_ = nullptr;
    uint64_t id_ = 0;
  };

  [[nodiscard]] Subscription Subscribe(Listener listener);
  void Publish(StoreChange change);

 private:
  std::mutex mutex_;
  std::map<uint64_t, Listener> listeners_;
  uint64_t next_id_ = 1;
};

class Datastore {
 public:
  virtual ~Datastore() = default;

  // Where committed writes are announced; a wrapper hands out the feed of the store it wraps.
  virtual ChangeFeed& changes() { return changes_; }

  // Entries. Create assigns id (when empty), created_at and revision; AlreadyExists when an
  // entry with the same spiffe_id, parent_id and selectors exists. Validation of the entry's
  // fields is the caller's; the store keeps what it is given.
  virtual Result<RegistrationEntry> CreateEntry(RegistrationEntry entry) = 0;
  // All or nothing: the first failing entry's error, naming its position.
  virtual Result<std::vector<RegistrationEntry>> CreateEntries(std::vector<RegistrationEntry> entries) = 0;
  virtual Result<RegistrationEntry> FetchEntry(const std::string& id) = 0;
  virtual Result<std::vector<RegistrationEntry>> ListEntries(const EntryFilter& filter) = 0;
  // Replaces every field but id and created_at; NotFound when there is no such entry.
  virtual Result<RegistrationEntry> UpdateEntry(RegistrationEntry entry) = 0;
  // SPIRE's batch semantics with one write: each entry succeeds or fails alone (one result per
  // entry, in order), and the batch is one transaction with one revision, so a thousand entries
  // cost one sync to disk. An error outside the results means nothing was written.
  virtual Result<std::vector<Result<RegistrationEntry>>> BatchCreateEntries(std::vector<RegistrationEntry> entries) = 0;
  virtual Result<std::vector<Result<RegistrationEntry>>> BatchUpdateEntries(std::vector<RegistrationEntry> entries) = 0;
  virtual Status DeleteEntry(const std::string& id) = 0;
  virtual Result<int64_t> CountEntries() = 0;
  // What changed after `since_revision`, among entries whose parent is one of `parent_ids`
  // (all entries when empty).
  virtual Result<EntryChanges> EntriesChangedSince(int64_t since_revision,
                                                   const std::vector<std::string>& parent_ids) = 0;
  virtual Result<int64_t> CurrentRevision() = 0;

  // Agents.
  virtual Status CreateAgent(const AttestedAgent& agent) = 0;
  virtual Result<AttestedAgent> FetchAgent(const std::string& spiffe_id) = 0;
  virtual Result<std::vector<AttestedAgent>> ListAgents() = 0;
  virtual Result<int64_t> CountAgents() = 0;
  // Records a newly attested agent, in one transaction: replaces any earlier record of the same
  // ID (a host that attests again) and, when `join_token` is not empty, spends that token:
  // NotFound when it is unknown or used, PermissionDenied when expired by `now`, and then
  // nothing is recorded or spent.
  virtual Status RecordAttestedAgent(const AttestedAgent& agent, const std::string& join_token, int64_t now) = 0;
  // A renewed SVID: `serial` becomes the current one, and `previous_serial` (the SVID the
  // renewal was asked with) stays accepted until `previous_valid_until`.
  virtual Status UpdateAgentSvid(const std::string& spiffe_id, const std::string& serial, int64_t expires_at,
                                 const std::string& previous_serial, int64_t previous_valid_until) = 0;
  virtual Status SetAgentBanned(const std::string& spiffe_id, bool banned) = 0;
  // Eviction: the agent must attest again.
  virtual Status DeleteAgent(const std::string& spiffe_id) = 0;

  // Join tokens, kept only as SHA-256 hashes. A token is spent by the RecordAttestedAgent that
  // records its agent, so it works at most once. FetchJoinToken reads one without spending it:
  // NotFound when unknown or used.
  virtual Status CreateJoinToken(const std::string& token, const JoinToken& details) = 0;
  virtual Result<JoinToken> FetchJoinToken(const std::string& token) = 0;
  virtual Result<int64_t> PruneJoinTokens(int64_t now) = 0;

  // Bundles, own and federated, by trust domain name. Setting a federated bundle whose data
  // changed also keeps it in the bundle history: the last kBundleHistoryDepth versions of each
  // trust domain, newest first, kept after the bundle is deleted.
  virtual Status SetBundle(const StoredBundle& bundle) = 0;
  virtual Result<StoredBundle> FetchBundle(const std::string& trust_domain) = 0;
  virtual Result<std::vector<StoredBundle>> ListBundles() = 0;
  virtual Status DeleteBundle(const std::string& trust_domain) = 0;
  virtual Result<std::vector<BundleVersion>> ListBundleHistory(const std::string& trust_domain) = 0;
  static constexpr int kBundleHistoryDepth = 10;

  // Federation relationships, by trust domain name. Create: AlreadyExists when one is stored
  // for that trust domain; Update and Delete: NotFound when none is.
  virtual Status CreateFederationRelationship(const StoredFederationRelationship& relationship) = 0;
  virtual Status UpdateFederationRelationship(const StoredFederationRelationship& relationship) = 0;
  virtual Result<std::vector<StoredFederationRelationship>> ListFederationRelationships() = 0;
  virtual Status DeleteFederationRelationship(const std::string& trust_domain) = 0;

  // CA journal.
  virtual Result<CaSlot> AddCaSlot(CaSlot slot) = 0;
  virtual Result<std::vector<CaSlot>> ListCaSlots() = 0;
  virtual Status SetCaSlotState(int64_t id, CaSlotState state) = 0;
  // Sets one mark of slot `id`; NotFound when there is no such slot.
  virtual Status MarkCaSlot(int64_t id, CaSlotMark mark) = 0;

  // A cheap round trip, for /ready.
  virtual Status Ping() = 0;

 protected:
  ChangeFeed changes_;
};

// A fresh entry id: a random UUID, as SPIRE's.
std::string NewEntryId();

}  // namespace sigil::serverd
