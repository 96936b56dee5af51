// What the agent's loops share to wait and retry: a back-off with jitter, a log line for a
// failure that repeats (core/failure_log.h), and the signal that wakes a sleeping loop (entry
// sync tells SVID rotation that the entry set changed) or ends it (Stop).
//
// Every retry of the agent goes through Backoff (core/backoff.h), whose policy the agent's config
// sets once (agent.retry_initial_backoff, agent.retry_max_backoff).
//
// Thread safety: WakeSignal may be used from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "core/backoff.h"
#include "core/failure_log.h"

namespace sigil::agentd {

class WakeSignal {
 public:
  // Read before the work whose outcome a sleep depends on: a Wake() while the caller was busy
  // then ends its next sleep at once rather than being lost.
  uint64_t Wakeups();
  void Wake();
  // Waits until `deadline`, Stop() or a Wake() after `seen` was read. False when stopping.
  bool SleepUntil(std::chrono::steady_clock::time_point deadline, uint64_t seen);
  // Ends every sleep, now and later.
  void Stop();
  bool stopping();

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  uint64_t wakeups_ = 0;
};

}  // namespace sigil::agentd
