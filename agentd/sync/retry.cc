#include "agentd/sync/retry.h"

#include <algorithm>
#include <random>

namespace sigil::agentd {

std::chrono::milliseconds BackoffStep(const BackoffPolicy& policy, int failures) {
  const auto ceiling = std::max(policy.ceiling, policy.initial);
  auto step = policy.initial;
  for (int i = 1; i < failures && step < ceiling; ++i) step *= 2;
  return std::min(step, ceiling);
}

double BackoffJitter() {
  thread_local std::mt19937_64 random(std::random_device{}());
  return std::uniform_real_distribution<double>(0.5, 1.0)(random);
}

std::chrono::milliseconds Backoff::Next() {
  if (failures_ < 64) ++failures_;
  const auto step = BackoffStep(policy_, failures_);
  return std::chrono::duration_cast<std::chrono::milliseconds>(step * BackoffJitter());
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
