#include "agentd/sync/retry.h"

namespace sigil::agentd {

uint64_t WakeSignal::Wakeups() {
  std::lock_guard lock(mutex_);
  return wakeups_;
}

void WakeSignal::Wake() {
  {
    std::lock_guard lock(mutex_);
    ++wakeups_;
  }
  wake_.notify_all();
}

bool WakeSignal::SleepUntil(std::chrono::steady_clock::time_point deadline, uint64_t seen) {
  std::unique_lock lock(mutex_);
  wake_.wait_until(lock, deadline, [&] { return stopping_ || wakeups_ != seen; });
  return !stopping_;
}

void WakeSignal::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
}

bool WakeSignal::stopping() {
  std::lock_guard lock(mutex_);
  return stopping_;
}

}  // namespace sigil::agentd
