#include "agentd/sync/svid_rotator.h"

#include <algorithm>
#include <mutex>
#include <thread>

#include "core/csr.h"
#include "core/log.h"
#include "core/x509_ca.h"
#include "hw/soft_key_store.h"

namespace sigil::agentd {

namespace {

constexpr size_t kCsrBatchSize = 64;
constexpr size_t kBatchesInFlight = 4;
// SVIDs are renewed this much before half-life, so the new one is in the cache (and pushed to
// watchers) by the time the old one reaches it.
constexpr std::chrono::milliseconds kRotationLead{1'000};
constexpr std::chrono::seconds kLongestSleep{30};
// The first wait of an entry refused because serverd's signing queue was full.
constexpr std::chrono::milliseconds kQueueFullRetry{200};

Bytes Concatenated(const std::vector<Bytes>& ders) {
  size_t size = 0;
  for (const Bytes& der : ders) size += der.size();
  Bytes out;
  out.reserve(size);
  for (const Bytes& der : ders) out.insert(out.end(), der.begin(), der.end());
  return out;
}

// The validity of the leaf of `chain_der`, read from the certificate itself, for a server that
// does not state it.
Result<std::pair<TimePoint, TimePoint>> LeafValidity(const std::vector<Bytes>& chain_der) {
  if (chain_der.empty()) return InvalidArgumentError("an SVID without certificates");
  SIGIL_ASSIGN_OR_RETURN(std::vector<CertValidity> validity, CertValiditiesFromDer(chain_der.front()));
  return std::make_pair(validity.front().not_before, validity.front().not_after);
}

// `when` on the steady clock, at most kLongestSleep ahead: the difference of two system times
// overflows when one lies at the clock's ends.
std::chrono::steady_clock::time_point SteadyAt(Clock::time_point when) {
  const auto now = Clock::now();
  const auto steady_now = std::chrono::steady_clock::now();
  if (when <= now) return steady_now;
  if (when >= now + kLongestSleep) return steady_now + kLongestSleep;
  return steady_now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(when - now);
}

}  // namespace

SvidRotator::SvidRotator(ServerClient* server, SvidCache* cache, AgentSvid* agent_svid, const EntrySync* sync,
                         WakeSignal* signal, KeyType workload_key_type, BackoffPolicy retry)
    : server_(server),
      cache_(cache),
      agent_svid_(agent_svid),
      sync_(sync),
      signal_(signal),
      workload_key_type_(workload_key_type),
      retry_(retry),
      renew_backoff_(retry),
      renew_failures_(LogLevel::kWarn, "agent SVID renewal failed; retrying", retry.ceiling),
      batch_backoff_(retry),
      batch_failures_(LogLevel::kWarn, "signing SVIDs failed; serving from cache and retrying", retry.ceiling),
      refusals_(LogLevel::kWarn, "serverd refused an SVID", retry.ceiling) {}

void SvidRotator::Run() {
  while (true) {
    // Read before the cache is: a sync landing while this round signs wakes the next sleep.
    const uint64_t wakeups_seen = signal_->Wakeups();
    RotateDue();
    if (!signal_->SleepUntil(NextRound(), wakeups_seen)) return;
  }
}

void SvidRotator::RotateDue() {
  const auto now = Clock::now();
  const auto steady_now = std::chrono::steady_clock::now();
  if (now >= agent_svid_->renew_at() && steady_now >= renew_retry_at_) RenewAgentSvid();
  // Also before the first sync: a restarted agent serves the SVIDs it kept only while valid.
  if (const size_t dropped = cache_->DropExpiredSvids(now); dropped > 0) {
    LogWarn("X509-SVIDs expired before serverd could renew them; no longer served",
            {{"svids", std::to_string(dropped)}});
  }
  if (!sync_->synced_once()) return;
  const auto snapshot = cache_->snapshot();
  std::erase_if(refused_, [&](const auto& item) { return !snapshot->entries->contains(item.first); });
  if (steady_now >= batch_retry_at_) {
    auto due = cache_->EntriesNeedingSvid(now + kRotationLead);
    std::erase_if(due, [&](const EntryRef& entry) {
      auto it = refused_.find(entry->id);
      return it != refused_.end() && it->second.when > steady_now;
    });
    if (!due.empty()) SignEntries(due);
  }
  ready_ = true;
}

void SvidRotator::RenewAgentSvid() {
  Status renewed = agent_svid_->Renew();
  if (renewed.ok()) {
    renew_backoff_.Reset();
    renew_retry_at_ = {};
    renew_failures_.Succeeded("agent SVID renewed after failures");
    return;
  }
  renew_retry_at_ = std::chrono::steady_clock::now() + renew_backoff_.Next();
  renew_failures_.Failed({{"error", renewed.ToString()}});
  if (renewed.code() == Code::kUnauthenticated) agent_svid_->Reattest(renewed);
}

SvidRotator::SteadyTime SvidRotator::NextRound() {
  const auto steady_now = std::chrono::steady_clock::now();
  auto next = steady_now + kLongestSleep;
  next = std::min(next, std::max(SteadyAt(agent_svid_->renew_at()), renew_retry_at_));
  if (auto rotation = cache_->NextRotation(Clock::now() + kRotationLead)) {
    next = std::min(next, std::max(SteadyAt(*rotation - kRotationLead), batch_retry_at_));
  }
  if (auto expiry = cache_->NextExpiry()) next = std::min(next, SteadyAt(*expiry));
  // Entries past half-life wait for the batch back-off, refused ones for their own.
  if (batch_retry_at_ > steady_now) next = std::min(next, batch_retry_at_);
  for (const auto& [id, retry] : refused_) {
    if (retry.when > steady_now) next = std::min(next, std::max(retry.when, batch_retry_at_));
  }
  return next;
}

void SvidRotator::SignEntries(const std::vector<EntryRef>& due) {
  std::vector<std::span<const EntryRef>> batches;
  for (size_t i = 0; i < due.size(); i += kCsrBatchSize) {
    batches.push_back(std::span(due).subspan(i, std::min(kCsrBatchSize, due.size() - i)));
  }
  std::atomic<size_t> next_batch{0};
  std::mutex outcome_mutex;
  BatchOutcome outcome;
  auto worker = [&] {
    for (size_t index; (index = next_batch.fetch_add(1)) < batches.size();) {
      BatchOutcome batch = SignBatch(batches[index]);
      std::lock_guard lock(outcome_mutex);
      std::move(batch.stored.begin(), batch.stored.end(), std::back_inserter(outcome.stored));
      std::move(batch.refused.begin(), batch.refused.end(), std::back_inserter(outcome.refused));
      if (!batch.batch_failure.ok()) outcome.batch_failure = batch.batch_failure;
    }
  };
  const size_t threads = std::min(batches.size(), kBatchesInFlight);
  std::vector<std::thread> workers;
  for (size_t i = 1; i < threads; ++i) workers.emplace_back(worker);
  worker();
  for (auto& thread : workers) thread.join();
  NoteOutcome(std::move(outcome));
}

SvidRotator::BatchOutcome SvidRotator::SignBatch(std::span<const EntryRef> batch) {
  // What lives in the cache is allocated afresh once the answers are in, and everything else a
  // batch holds is freed together at its end, so the batch's short-lived memory is one run the
  // next batch reuses rather than holes among the cached SVIDs. Each key is kept as PKCS#8 DER
  // from the moment its CSR is made for the same reason: a key object's many small allocations
  // are freed before the next key's, and reuse one another's.
  // Only entries whose key and CSR were made are sent; `asked[i]` is the entry of item i.
  BatchOutcome outcome;
  std::vector<CsrRequestItem> items;
  std::vector<Bytes> keys;
  std::vector<const EntryRef*> asked;
  for (const EntryRef& entry : batch) {
    auto key = hw::GenerateSoftKey(workload_key_type_);
    auto csr = key.ok() ? MakeCsr(key->get()) : Result<Bytes>(key.status());
    auto key_der = csr.ok() ? PrivateKeyToPkcs8Der(key->get()) : Result<Bytes>(csr.status());
    if (!key_der.ok()) {
      outcome.refused.emplace_back(entry->id, key_der.status());
      continue;
    }
    keys.push_back(std::move(*key_der));
    items.push_back({entry->id, std::move(*csr)});
    asked.push_back(&entry);
  }
  if (items.empty()) return outcome;
  auto answers = server_->SignCsrBatch(items);
  if (!answers.ok()) {
    outcome.batch_failure = answers.status();
    return outcome;
  }
  std::vector<std::shared_ptr<const WorkloadX509Svid>> signed_svids;
  for (size_t i = 0; i < asked.size(); ++i) {
    const CsrAnswer& answer = (*answers)[i];
    const RegistrationEntry& entry = **asked[i];
    auto validity = !answer.status.ok()                            ? Result<std::pair<TimePoint, TimePoint>>(answer.status)
                    : answer.validity && !answer.chain_der.empty() ? *answer.validity
                                                                   : LeafValidity(answer.chain_der);
    if (!validity.ok()) {
      outcome.refused.emplace_back(entry.id, validity.status());
      continue;
    }
    auto svid = std::make_shared<WorkloadX509Svid>();
    svid->issued_for = *asked[i];
    svid->chain_der = Concatenated(answer.chain_der);
    svid->key_pkcs8_der = keys[i];
    svid->not_before = validity->first;
    svid->not_after = validity->second;
    if (auto issuers = IssuingAuthorityIds(svid->chain_der); issuers.ok()) svid->issuing_authority_ids = std::move(*issuers);
    signed_svids.push_back(std::move(svid));
  }
  for (const auto& svid : signed_svids) outcome.stored.push_back(svid->entry_id());
  cache_->StoreSvids(std::move(signed_svids));
  return outcome;
}

void SvidRotator::NoteOutcome(BatchOutcome outcome) {
  const auto now = std::chrono::steady_clock::now();
  for (const auto& id : outcome.stored) refused_.erase(id);
  // One factor for every entry refused in this round: those refused together come back
  // together, in one batch.
  const double jitter = BackoffJitter();
  for (const auto& [id, status] : outcome.refused) {
    EntryRetry& retry = refused_[id];
    ++retry.refusals;
    // A full signing queue asks to come back soon; anything else may take longer to mend.
    BackoffPolicy policy = retry_;
    if (status.code() == Code::kResourceExhausted) policy.initial = std::min(policy.initial, kQueueFullRetry);
    retry.when = now + std::chrono::duration_cast<std::chrono::milliseconds>(
                           BackoffStep(policy, retry.refusals) * jitter);
    if (status.code() != Code::kResourceExhausted && status.code() != Code::kUnavailable) {
      refusals_.Failed({{"entry_id", id}, {"error", status.ToString()}});
    }
  }
  if (outcome.batch_failure.ok()) {
    batch_backoff_.Reset();
    batch_failures_.Succeeded("signing SVIDs recovered");
  } else {
    // The batch never reached a signer: every entry waits for the same back-off.
    batch_retry_at_ = now + batch_backoff_.Next();
    batch_failures_.Failed({{"error", outcome.batch_failure.ToString()}});
    if (outcome.batch_failure.code() == Code::kUnauthenticated) agent_svid_->Reattest(outcome.batch_failure);
  }
  if (!outcome.stored.empty()) LogDebug("SVIDs signed", {{"count", std::to_string(outcome.stored.size())}});
}

}  // namespace sigil::agentd
