// What the agent's loops share to wait and retry: a back-off with jitter, a log line for a
// failure that repeats (core/failure_log.h), and the signal that wakes a sleeping loop (entry
// sync tells SVID rotation that the entry set changed) or ends it (Stop).
//
// Every retry of the agent goes through Backoff, so its policy is set here once: from
// `initial`, doubled on each failure up to `ceiling`, reset by a success. The agent's config
// sets both (agent.retry_initial_backoff, agent.retry_max_backoff).
//
// Thread safety: a Backoff belongs to one loop. WakeSignal may be used from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "core/failure_log.h"

namespace sigil::agentd {

struct BackoffPolicy {
  std::chrono::milliseconds initial{1'000};
  std::chrono::milliseconds ceiling{60'000};
};

// The step after `failures` failures in a row: `initial` doubled for each after the first, at
// most `ceiling`.
std::chrono::milliseconds BackoffStep(const BackoffPolicy& policy, int failures);
// A factor between 0.5 and 1 that a wait is scaled by, drawn afresh on each call.
double BackoffJitter();

class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy = {}) : policy_(policy) {}

  // How long to wait before the next try: between half and all of the current step, which
  // then doubles. The jitter keeps a fleet of agents from retrying in step after a server
  // restart.
  std::chrono::milliseconds Next();
  void Reset() { failures_ = 0; }

 private:
  BackoffPolicy policy_;
  int failures_ = 0;
};

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
