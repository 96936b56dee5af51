// SVID rotation: the agent's own SVID is renewed at half-life, and every entry in the cache
// gets an X509-SVID and a new one before its current one reaches half of its lifetime (or as
// soon as the entry changes shape). One key pair and CSR per entry, sent in batches of up to
// 64, several batches in flight; an entry serverd refuses waits on its own and the others go
// on. Every failure backs off (retry.h): a failed renewal of the agent's SVID on its own, a
// batch that never reached a signer (serverd unreachable) for all entries together, and each
// refused entry by how often it was refused. Nothing is retried before its back-off ends, even
// when its half-life has passed.
//
// Thread safety: Run on a thread of its own, woken by entry sync through `signal` and ended by
// its Stop. ready from any thread.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "agentd/sync/agent_svid.h"
#include "agentd/sync/entry_sync.h"
#include "agentd/sync/retry.h"
#include "agentd/sync/server_client.h"
#include "agentd/sync/svid_cache.h"
#include "core/signer.h"

namespace sigil::agentd {

class SvidRotator {
 public:
  SvidRotator(ServerClient* server, SvidCache* cache, AgentSvid* agent_svid, const EntrySync* sync,
              WakeSignal* signal, KeyType workload_key_type, BackoffPolicy retry);
  SvidRotator(const SvidRotator&) = delete;
  SvidRotator& operator=(const SvidRotator&) = delete;

  // Runs until `signal` stops: on a thread of its own, which the agent starts and joins.
  void Run();

  // True after the first signing round that followed the first sync, even when some entry was
  // refused: one bad entry must not make the whole agent look down.
  bool ready() const { return ready_.load(); }

 private:
  using EntryRef = std::shared_ptr<const RegistrationEntry>;
  using SteadyTime = std::chrono::steady_clock::time_point;
  // What signing one batch left: entries serverd refused one by one (entry id, why) and, when
  // the batch as a whole failed, why.
  struct BatchOutcome {
    std::vector<std::string> stored;  // entry ids
    std::vector<std::pair<std::string, Status>> refused;
    Status batch_failure;
  };
  // An entry serverd refused: how often in a row, and when it may be asked for again.
  struct EntryRetry {
    int refusals = 0;
    SteadyTime when;
  };

  // One round: the agent SVID when due, then the entries due, each unless backing off.
  void RotateDue();
  void RenewAgentSvid();
  // When the next round is due: never at a time already past, so a failure cannot spin.
  SteadyTime NextRound();
  // Signs what `due` lists.
  void SignEntries(const std::vector<EntryRef>& due);
  BatchOutcome SignBatch(std::span<const EntryRef> batch);
  void NoteOutcome(BatchOutcome outcome);

  ServerClient* server_;
  SvidCache* cache_;
  AgentSvid* agent_svid_;
  const EntrySync* sync_;
  WakeSignal* signal_;
  KeyType workload_key_type_;
  const BackoffPolicy retry_;
  std::atomic<bool> ready_{false};

  // The rotation thread's own.
  Backoff renew_backoff_;
  SteadyTime renew_retry_at_{};
  FailureLog renew_failures_;
  Backoff batch_backoff_;
  SteadyTime batch_retry_at_{};
  FailureLog batch_failures_;
  std::map<std::string, EntryRetry> refused_;  // by entry id
  FailureLog refusals_;
};

}  // namespace sigil::agentd
