// What the agent's loops share to wait and retry: a back-off with full jitter, and the signal
// that wakes a sleeping loop (entry sync tells SVID rotation that the entry set changed) or ends
// it (Stop).
//
// Every retry of the agent goes through Backoff, so its policy is set here once: from
// kFirstBackoff, doubled on each failure up to kMaxBackoff, reset by a success.
//
// Thread safety: a Backoff belongs to one loop. WakeSignal may be used from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace sigil::agentd {

class Backoff {
 public:
  static constexpr std::chrono::milliseconds kFirstBackoff{500};
  static constexpr std::chrono::milliseconds kMaxBackoff{30'000};

  // How long to wait before the next try: between half and all of the current step, which
  // then doubles. Full jitter keeps a fleet of agents from retrying in step after a server
  // restart.
  std::chrono::milliseconds Next();
  void Reset() { step_ = kFirstBackoff; }

 private:
  std::chrono::milliseconds step_ = kFirstBackoff;
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
