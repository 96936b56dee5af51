#include "agentd/sync/entry_sync.h"

#include "core/log.h"

namespace sigil::agentd {

std::chrono::milliseconds LongPollWait() { return Spread(std::chrono::milliseconds(30'000), 0.1); }

void EntrySync::Run() {
  int64_t revision = 0;
  Backoff backoff(retry_);
  FailureLog failures(LogLevel::kWarn, "entry sync failed; serving from cache and retrying", retry_.ceiling);
  while (!signal_->stopping()) {
    auto answer = server_->SyncEntries(revision, revision == 0 ? std::chrono::milliseconds(0) : LongPollWait());
    if (!answer.ok()) {
      if (answer.status().code() == Code::kUnauthenticated) {
        agent_svid_->Reattest(answer.status());
        revision = 0;
      }
      failures.Failed({{"error", answer.status().ToString()}});
      if (!signal_->SleepUntil(std::chrono::steady_clock::now() + backoff.Next(), signal_->Wakeups())) return;
      continue;
    }
    backoff.Reset();
    failures.Succeeded("entry sync recovered");
    revision = Apply(std::move(*answer));
    synced_once_ = true;
    signal_->Wake();
  }
}

int64_t EntrySync::Apply(EntrySyncAnswer answer) {
  const size_t changed = answer.entries.size();
  const size_t removed = answer.removed_entry_ids.size();
  cache_->ApplyEntries(std::move(answer.entries), answer.removed_entry_ids, answer.revision, answer.full);
  std::string federated_names;
  for (const auto& [name, bundle] : answer.federated_bundles) federated_names += (federated_names.empty() ? "" : ",") + name;
  if (cache_->SetFederatedBundles(std::move(answer.federated_bundles))) {
    LogInfo("federated bundles updated", {{"trust_domains", federated_names}});
  }
  if (cache_->SetBundle(answer.bundle)) {
    if (Status set = server_->SetBundle(answer.bundle.x509); !set.ok()) {
      LogError("serverd sent an unusable trust bundle", {{"error", set.ToString()}});
    }
    if (Status saved = agent_svid_->SaveTrustBundle(answer.bundle); !saved.ok()) {
      LogWarn("could not save the trust bundle", {{"error", saved.ToString()}});
    }
    if (agent_svid_->RenewNowIfIssuedBy(answer.bundle.tainted_x509_authorities)) {
      LogWarn("an authority that issued the agent's SVID is tainted; renewing it now");
    }
  }
  if (changed > 0 || removed > 0 || answer.full) {
    LogDebug("entries synced", {{"revision", std::to_string(answer.revision)}, {"changed", std::to_string(changed)},
                                {"removed", std::to_string(removed)}, {"full", answer.full ? "true" : "false"}});
  }
  return answer.revision;
}

}  // namespace sigil::agentd
