#include "core/backoff.h"

#include <algorithm>
#include <random>

namespace sigil {

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

}  // namespace sigil
