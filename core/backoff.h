// A back-off with jitter for every loop that retries: from `initial`, doubled on each failure up
// to `ceiling`, reset by a success; each wait between half and all of its step, so that many
// peers retrying after one outage do not retry in step.
//
// Thread safety: a Backoff belongs to one loop.
#pragma once

#include <chrono>

namespace sigil {

struct BackoffPolicy {
  std::chrono::milliseconds initial{1'000};
  std::chrono::milliseconds ceiling{60'000};
};

// The step after `failures` failures in a row: `initial` doubled for each after the first, at
// most `ceiling`.
std::chrono::milliseconds BackoffStep(const BackoffPolicy& policy, int failures);
// A factor between 0.5 and 1 that a wait is scaled by, drawn afresh on each call.
double BackoffJitter();
// `wait` less up to `fraction` of it, drawn afresh on each call. Periodic calls of many peers
// that began together (a fleet's long polls after serverd restarted) drift apart with it
// instead of staying in step for ever.
std::chrono::milliseconds Spread(std::chrono::milliseconds wait, double fraction);

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

}  // namespace sigil
