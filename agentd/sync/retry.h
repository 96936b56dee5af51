// What the agent's loops share to wait and retry: a back-off with jitter, a log line for a
// failure that repeats, and the signal that wakes a sleeping loop (entry sync tells SVID
// rotation that the entry set changed) or ends it (Stop).
//
// Every retry of the agent goes through Backoff, so its policy is set here once: from
// `initial`, doubled on each failure up to `ceiling`, reset by a success. The agent's config
// sets both (agent.retry_initial_backoff, agent.retry_max_backoff).
//
// Thread safety: a Backoff belongs to one loop. FailureLog and WakeSignal may be used from any
// thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

#include "core/log.h"

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

// A failure that a loop meets again and again, logged at most once per `interval`: the first
// at once, and then one line per interval whose `failures` field counts every failure since
// the line before, itself included. A loop retrying in seconds would otherwise fill the log.
class FailureLog {
 public:
  FailureLog(LogLevel level, std::string message, std::chrono::milliseconds interval)
      : level_(level), message_(std::move(message)), interval_(interval) {}

  // `fields` describe the latest failure (its error, the entry).
  void Failed(LogFields fields);
  // After a success: one info line `recovered` with how many failures it ended, when there
  // were any.
  void Succeeded(std::string_view recovered);

 private:
  const LogLevel level_;
  const std::string message_;
  const std::chrono::milliseconds interval_;
  std::mutex mutex_;
  uint64_t unlogged_ = 0;       // failures since the last line
  uint64_t since_success_ = 0;  // failures since the last success
  std::chrono::steady_clock::time_point last_line_{};
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
