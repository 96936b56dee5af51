// Entry sync: one long poll always open at serverd, which answers as soon as an entry or the
// bundle changes; the cache takes full or incremental answers by revision. A new trust bundle
// is handed to the server client (serverd's certificate is checked against it) and saved in
// data_dir. Every answer wakes SVID rotation, which signs what the new entries need.
//
// While serverd is unreachable the cache keeps answering and the poll retries with back-off;
// when serverd no longer knows the agent, the agent attests again and syncs from revision 0.
//
// Thread safety: Run on a thread of its own, ended by `signal`'s Stop and the server client's
// Close. synced_once from any thread.
#pragma once

#include <atomic>

#include "agentd/sync/agent_svid.h"
#include "agentd/sync/retry.h"
#include "agentd/sync/server_client.h"
#include "agentd/sync/svid_cache.h"

namespace sigil::agentd {

// How long each long poll asks serverd to wait for news: 27 to 30 s, drawn afresh each time, so
// a fleet whose agents all synced at once (serverd restarted) does not poll in step for ever.
std::chrono::milliseconds LongPollWait();

class EntrySync {
 public:
  EntrySync(ServerClient* server, SvidCache* cache, AgentSvid* agent_svid, WakeSignal* signal, BackoffPolicy retry)
      : server_(server), cache_(cache), agent_svid_(agent_svid), signal_(signal), retry_(retry) {}
  EntrySync(const EntrySync&) = delete;
  EntrySync& operator=(const EntrySync&) = delete;

  // Runs until `signal` stops: on a thread of its own, which the agent starts and joins.
  void Run();

  // True once the cache has taken one answer of serverd.
  bool synced_once() const { return synced_once_.load(); }

 private:
  // Takes one answer into the cache and the server client; returns its revision.
  int64_t Apply(EntrySyncAnswer answer);

  ServerClient* server_;
  SvidCache* cache_;
  AgentSvid* agent_svid_;
  WakeSignal* signal_;
  const BackoffPolicy retry_;
  std::atomic<bool> synced_once_{false};
};

}  // namespace sigil::agentd
