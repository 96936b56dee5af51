// A Datastore that times every call of the one it wraps, for /metrics:
// sigil_server_datastore_latency_seconds{operation="CreateEntry"}, a histogram of each
// operation's time, failures included. Whatever the wrapped store answers is answered as it is.
//
// Thread safety: as the wrapped store; the metrics are updated from any thread.
#pragma once

#include <memory>

#include "core/metrics.h"
#include "serverd/datastore/datastore.h"

namespace sigil::serverd {

class TimedDatastore final : public Datastore {
 public:
  TimedDatastore(std::unique_ptr<Datastore> inner, MetricsRegistry* metrics)
      : owned_(std::move(inner)), inner_(*owned_), metrics_(metrics) {}

  ChangeFeed& changes() override { return inner_.changes(); }

  Result<RegistrationEntry> CreateEntry(RegistrationEntry entry) override;
  Result<std::vector<RegistrationEntry>> CreateEntries(
      std::vector<RegistrationEntry> entries) override;
  Result<RegistrationEntry> FetchEntry(const std::string& id) override;
  Result<std::vector<RegistrationEntry>> ListEntries(const EntryFilter& filter) override;
  Result<RegistrationEntry> UpdateEntry(RegistrationEntry entry) override;
  Result<std::vector<Result<RegistrationEntry>>> BatchCreateEntries(
      std::vector<RegistrationEntry> entries) override;
  Result<std::vector<Result<RegistrationEntry>>> BatchUpdateEntries(
      std::vector<RegistrationEntry> entries) override;
  Status DeleteEntry(const std::string& id) override;
  Result<int64_t> CountEntries() override;
  Result<EntryChanges> EntriesChangedSince(int64_t since_revision,
                                           const std::vector<std::string>& parent_ids) override;
  Result<int64_t> CurrentRevision() override;
  Status CreateAgent(const AttestedAgent& agent) override;
  Result<AttestedAgent> FetchAgent(const std::string& spiffe_id) override;
  Result<std::vector<AttestedAgent>> ListAgents() override;
  Result<int64_t> CountAgents() override;
  Status RecordAttestedAgent(const AttestedAgent& agent, const std::string& join_token,
                             int64_t now) override;
  Status UpdateAgentSvid(const std::string& spiffe_id, const std::string& serial,
                         int64_t expires_at, const std::string& previous_serial,
                         int64_t previous_valid_until) override;
  Status SetAgentBanned(const std::string& spiffe_id, bool banned) override;
  Status DeleteAgent(const std::string& spiffe_id) override;
  Status CreateJoinToken(const std::string& token, const JoinToken& details) override;
  Result<JoinToken> FetchJoinToken(const std::string& token) override;
  Result<int64_t> PruneJoinTokens(int64_t now) override;
  Status SetBundle(const StoredBundle& bundle) override;
  Result<StoredBundle> FetchBundle(const std::string& trust_domain) override;
  Result<std::vector<StoredBundle>> ListBundles() override;
  Status DeleteBundle(const std::string& trust_domain) override;
  Result<std::vector<BundleVersion>> ListBundleHistory(const std::string& trust_domain) override;
  Status CreateFederationRelationship(const StoredFederationRelationship& relationship) override;
  Status UpdateFederationRelationship(const StoredFederationRelationship& relationship) override;
  Result<std::vector<StoredFederationRelationship>> ListFederationRelationships() override;
  Status DeleteFederationRelationship(const std::string& trust_domain) override;
  Result<CaSlot> AddCaSlot(CaSlot slot) override;
  Result<std::vector<CaSlot>> ListCaSlots() override;
  Status SetCaSlotState(int64_t id, CaSlotState state) override;
  Status MarkCaSlot(int64_t id, CaSlotMark mark) override;
  Status Ping() override;

 private:
  template <typename Call>
  auto Timed(const char* operation, const Call& call) -> decltype(call()) {
    const auto started = std::chrono::steady_clock::now();
    auto result = call();
    Observe(operation, std::chrono::steady_clock::now() - started);
    return result;
  }
  void Observe(const char* operation, std::chrono::steady_clock::duration elapsed);

  std::unique_ptr<Datastore> owned_;
  Datastore& inner_;
  MetricsRegistry* metrics_;
};

}  // namespace sigil::serverd
