// SVID rotation: the agent's own SVID is renewed at half-life, and every entry in the cache
// gets an X509-SVID and a new one before its current one reaches half of its lifetime (or as
// soon as the entry changes shape). One key pair and CSR per entry, sent in batches of up to
// 64, several batches in flight; an entry serverd refuses waits on its own and the others go
// on; a round that failed retries with back-off.
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
              WakeSignal* signal, KeyType workload_key_type)
      : server_(server), cache_(cache), agent_svid_(agent_svid), sync_(sync), signal_(signal),
        workload_key_type_(workload_key_type) {}
  SvidRotator(const SvidRotator&) = delete;
  SvidRotator& operator=(const SvidRotator&) = delete;

  // Runs until `signal` stops: on a thread of its own, which the agent starts and joins.
  void Run();

  // True after the first signing round that followed the first sync, even when some entry was
  // refused: one bad entry must not make the whole agent look down.
  bool ready() const { return ready_.load(); }

 private:
  using EntryRef = std::shared_ptr<const RegistrationEntry>;
  // What signing one batch left: entries refused (entry id, why) and, when the batch as a
  // whole failed, why.
  struct BatchOutcome {
    size_t stored = 0;
    std::vector<std::pair<std::string, Status>> refused;
    Status batch_failure;
  };

  // One round: the agent SVID when due, then the entries due. False when something failed.
  bool RotateDue();
  // When the next round is due.
  std::chrono::steady_clock::time_point NextRound();
  // Signs what `due` lists; returns how many SVIDs were stored.
  size_t SignEntries(const std::vector<EntryRef>& due);
  BatchOutcome SignBatch(std::span<const EntryRef> batch);
  void NoteOutcome(const std::vector<EntryRef>& due, BatchOutcome outcome);

  ServerClient* server_;
  SvidCache* cache_;
  AgentSvid* agent_svid_;
  const EntrySync* sync_;
  WakeSignal* signal_;
  KeyType workload_key_type_;
  std::atomic<bool> ready_{false};
  std::map<std::string, std::chrono::steady_clock::time_point> retry_after_;  // rotation thread; entry id -> when
};

}  // namespace sigil::agentd
