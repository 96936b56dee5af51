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

std::chrono::steady_clock::time_point SteadyAt(Clock::time_point when) {
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(when - Clock::now());
}

}  // namespace

void SvidRotator::Run() {
  Backoff backoff;
  while (true) {
    // Read before the cache is: a sync landing while this round signs wakes the next sleep.
    const uint64_t wakeups_seen = signal_->Wakeups();
    const bool ok = RotateDue();
    auto next = NextRound();
    if (ok) {
      backoff.Reset();
    } else {
      next = std::min(next, std::chrono::steady_clock::now() + backoff.Next());
    }
    if (!signal_->SleepUntil(next, wakeups_seen)) return;
  }
}

bool SvidRotator::RotateDue() {
  const auto now = Clock::now();
  bool ok = true;
  if (now >= agent_svid_->renew_at()) {
    if (Status renewed = agent_svid_->Renew(); !renewed.ok()) {
      ok = false;
      if (renewed.code() == Code::kUnauthenticated) {
        agent_svid_->Reattest(renewed);
      } else {
        LogWarn("agent SVID renewal failed; retrying", {{"error", renewed.ToString()}});
      }
    }
  }
  if (!sync_->synced_once()) return ok;
  auto due = cache_->EntriesNeedingSvid(now + kRotationLead);
  const auto steady_now = std::chrono::steady_clock::now();
  std::erase_if(due, [&](const EntryRef& entry) {
    auto it = retry_after_.find(entry->id);
    return it != retry_after_.end() && it->second > steady_now;
  });
  if (!due.empty() && SignEntries(due) < due.size()) ok = false;
  ready_ = true;
  return ok;
}

std::chrono::steady_clock::time_point SvidRotator::NextRound() {
  auto next = std::chrono::steady_clock::now() + kLongestSleep;
  if (auto rotation = cache_->NextRotation()) next = std::min(next, SteadyAt(*rotation - kRotationLead));
  next = std::min(next, SteadyAt(agent_svid_->renew_at()));
  for (const auto& [id, when] : retry_after_) next = std::min(next, when);
  return next;
}

size_t SvidRotator::SignEntries(const std::vector<EntryRef>& due) {
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
      outcome.stored += batch.stored;
      std::move(batch.refused.begin(), batch.refused.end(), std::back_inserter(outcome.refused));
      if (!batch.batch_failure.ok()) outcome.batch_failure = batch.batch_failure;
    }
  };
  const size_t threads = std::min(batches.size(), kBatchesInFlight);
  std::vector<std::thread> workers;
  for (size_t i = 1; i < threads; ++i) workers.emplace_back(worker);
  worker();
  for (auto& thread : workers) thread.join();
  const size_t stored = outcome.stored;
  NoteOutcome(due, std::move(outcome));
  return stored;
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
    for (const EntryRef* entry : asked) outcome.refused.emplace_back((*entry)->id, answers.status());
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
    signed_svids.push_back(std::move(svid));
  }
  outcome.stored = signed_svids.size();
  cache_->StoreSvids(std::move(signed_svids));
  return outcome;
}

void SvidRotator::NoteOutcome(const std::vector<EntryRef>& due, BatchOutcome outcome) {
  const auto now = std::chrono::steady_clock::now();
  for (const auto& entry : due) retry_after_.erase(entry->id);
  for (const auto& [id, status] : outcome.refused) {
    // One refused entry waits on its own; the others go on.
    const auto wait =
        status.code() == Code::kResourceExhausted ? std::chrono::milliseconds(200) : std::chrono::seconds(5);
    retry_after_[id] = now + wait;
    if (status.code() != Code::kResourceExhausted && status.code() != Code::kUnavailable) {
      LogWarn("serverd refused an SVID", {{"entry_id", id}, {"error", status.ToString()}});
    }
  }
  if (!outcome.batch_failure.ok()) {
    if (outcome.batch_failure.code() == Code::kUnauthenticated) {
      agent_svid_->Reattest(outcome.batch_failure);
    } else {
      LogWarn("signing SVIDs failed; serving from cache and retrying", {{"error", outcome.batch_failure.ToString()}});
    }
  }
  if (outcome.stored > 0) LogDebug("SVIDs signed", {{"count", std::to_string(outcome.stored)}});
}

}  // namespace sigil::agentd
