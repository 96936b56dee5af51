#include "serverd/datastore/timed_datastore.h"

namespace sigil::serverd {

void TimedDatastore::Observe(const char* operation, std::chrono::steady_clock::duration elapsed) {
  // From 10 µs (a read SQLite has cached) to 10 s (a write waiting on a slow disk).
  metrics_
      ->GetHistogram("sigil_server_datastore_latency_seconds",
                     "Time of each datastore operation, failures included",
                     Histogram::ExponentialBounds(1e-5, 10), {{"operation", operation}})
      .Observe(std::chrono::duration<double>(elapsed).count());
}

Result<RegistrationEntry> TimedDatastore::CreateEntry(RegistrationEntry entry) {
  return Timed("CreateEntry", [&] { return inner_.CreateEntry(std::move(entry)); });
}

Result<std::vector<RegistrationEntry>> TimedDatastore::CreateEntries(
    std::vector<RegistrationEntry> entries) {
  return Timed("CreateEntries", [&] { return inner_.CreateEntries(std::move(entries)); });
}

Result<RegistrationEntry> TimedDatastore::FetchEntry(const std::string& id) {
  return Timed("FetchEntry", [&] { return inner_.FetchEntry(id); });
}

Result<std::vector<RegistrationEntry>> TimedDatastore::ListEntries(const EntryFilter& filter) {
  return Timed("ListEntries", [&] { return inner_.ListEntries(filter); });
}

Result<RegistrationEntry> TimedDatastore::UpdateEntry(RegistrationEntry entry) {
  return Timed("UpdateEntry", [&] { return inner_.UpdateEntry(std::move(entry)); });
}

Result<std::vector<Result<RegistrationEntry>>> TimedDatastore::BatchCreateEntries(
    std::vector<RegistrationEntry> entries) {
  return Timed("BatchCreateEntries", [&] { return inner_.BatchCreateEntries(std::move(entries)); });
}

Result<std::vector<Result<RegistrationEntry>>> TimedDatastore::BatchUpdateEntries(
    std::vector<RegistrationEntry> entries) {
  return Timed("BatchUpdateEntries", [&] { return inner_.BatchUpdateEntries(std::move(entries)); });
}

Status TimedDatastore::DeleteEntry(const std::string& id) {
  return Timed("DeleteEntry", [&] { return inner_.DeleteEntry(id); });
}

Result<int64_t> TimedDatastore::CountEntries() {
  return Timed("CountEntries", [&] { return inner_.CountEntries(); });
}

Result<EntryChanges> TimedDatastore::EntriesChangedSince(
    int64_t since_revision, const std::vector<std::string>& parent_ids) {
  return Timed("EntriesChangedSince",
               [&] { return inner_.EntriesChangedSince(since_revision, parent_ids); });
}

Result<int64_t> TimedDatastore::CurrentRevision() {
  return Timed("CurrentRevision", [&] { return inner_.CurrentRevision(); });
}

Status TimedDatastore::CreateAgent(const AttestedAgent& agent) {
  return Timed("CreateAgent", [&] { return inner_.CreateAgent(agent); });
}

Result<AttestedAgent> TimedDatastore::FetchAgent(const std::string& spiffe_id) {
  return Timed("FetchAgent", [&] { return inner_.FetchAgent(spiffe_id); });
}

Result<std::vector<AttestedAgent>> TimedDatastore::ListAgents() {
  return Timed("ListAgents", [&] { return inner_.ListAgents(); });
}

Result<int64_t> TimedDatastore::CountAgents() {
  return Timed("CountAgents", [&] { return inner_.CountAgents(); });
}

Status TimedDatastore::RecordAttestedAgent(const AttestedAgent& agent,
                                           const std::string& join_token, int64_t now) {
  return Timed("RecordAttestedAgent",
               [&] { return inner_.RecordAttestedAgent(agent, join_token, now); });
}

Status TimedDatastore::UpdateAgentSvid(const std::string& spiffe_id, const std::string& serial,
                                       int64_t expires_at, const std::string& previous_serial,
                                       int64_t previous_valid_until) {
  return Timed("UpdateAgentSvid", [&] {
    return inner_.UpdateAgentSvid(spiffe_id, serial, expires_at, previous_serial,
                                  previous_valid_until);
  });
}

Status TimedDatastore::SetAgentBanned(const std::string& spiffe_id, bool banned) {
  return Timed("SetAgentBanned", [&] { return inner_.SetAgentBanned(spiffe_id, banned); });
}

Status TimedDatastore::DeleteAgent(const std::string& spiffe_id) {
  return Timed("DeleteAgent", [&] { return inner_.DeleteAgent(spiffe_id); });
}

Status TimedDatastore::CreateJoinToken(const std::string& token, const JoinToken& details) {
  return Timed("CreateJoinToken", [&] { return inner_.CreateJoinToken(token, details); });
}

Result<JoinToken> TimedDatastore::FetchJoinToken(const std::string& token) {
  return Timed("FetchJoinToken", [&] { return inner_.FetchJoinToken(token); });
}

Result<int64_t> TimedDatastore::PruneJoinTokens(int64_t now) {
  return Timed("PruneJoinTokens", [&] { return inner_.PruneJoinTokens(now); });
}

Status TimedDatastore::SetBundle(const StoredBundle& bundle) {
  return Timed("SetBundle", [&] { return inner_.SetBundle(bundle); });
}

Result<StoredBundle> TimedDatastore::FetchBundle(const std::string& trust_domain) {
  return Timed("FetchBundle", [&] { return inner_.FetchBundle(trust_domain); });
}

Result<std::vector<StoredBundle>> TimedDatastore::ListBundles() {
  return Timed("ListBundles", [&] { return inner_.ListBundles(); });
}

Status TimedDatastore::DeleteBundle(const std::string& trust_domain) {
  return Timed("DeleteBundle", [&] { return inner_.DeleteBundle(trust_domain); });
}

Result<std::vector<BundleVersion>> TimedDatastore::ListBundleHistory(
    const std::string& trust_domain) {
  return Timed("ListBundleHistory", [&] { return inner_.ListBundleHistory(trust_domain); });
}

Status TimedDatastore::CreateFederationRelationship(
    const StoredFederationRelationship& relationship) {
  return Timed("CreateFederationRelationship",
               [&] { return inner_.CreateFederationRelationship(relationship); });
}

Status TimedDatastore::UpdateFederationRelationship(
    const StoredFederationRelationship& relationship) {
  return Timed("UpdateFederationRelationship",
               [&] { return inner_.UpdateFederationRelationship(relationship); });
}

Result<std::vector<StoredFederationRelationship>> TimedDatastore::ListFederationRelationships() {
  return Timed("ListFederationRelationships", [&] { return inner_.ListFederationRelationships(); });
}

Status TimedDatastore::DeleteFederationRelationship(const std::string& trust_domain) {
  return Timed("DeleteFederationRelationship",
               [&] { return inner_.DeleteFederationRelationship(trust_domain); });
}

Result<CaSlot> TimedDatastore::AddCaSlot(CaSlot slot) {
  return Timed("AddCaSlot", [&] { return inner_.AddCaSlot(std::move(slot)); });
}

Result<std::vector<CaSlot>> TimedDatastore::ListCaSlots() {
  return Timed("ListCaSlots", [&] { return inner_.ListCaSlots(); });
}

Status TimedDatastore::SetCaSlotState(int64_t id, CaSlotState state) {
  return Timed("SetCaSlotState", [&] { return inner_.SetCaSlotState(id, state); });
}

Status TimedDatastore::MarkCaSlot(int64_t id, CaSlotMark mark) {
  return Timed("MarkCaSlot", [&] { return inner_.MarkCaSlot(id, mark); });
}

Status TimedDatastore::Ping() {
  return Timed("Ping", [&] { return inner_.Ping(); });
}
}  // namespace sigil::serverd
