#include "agentd/sync/retry.h"

#include <algorithm>
#include <random>

namespace sigil::agentd {

std::chrono::milliseconds Backoff::Next() {
  thread_local std::mt19937_64 random(std::random_device{}());
  const auto wait =
      std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(step_.count() / 2, step_.count())(random));
  step_ = std::min(step_ * 2, kMaxBackoff);
  return wait;
}

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
