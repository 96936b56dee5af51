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

namespace {

double UniformBetween(double low, double high) {
  thread_local std::mt19937_64 random(std::random_device{}());
  return std::uniform_real_distribution<double>(low, high)(random);
}

}  // namespace

double BackoffJitter() { return UniformBetween(0.5, 1.0); }

std::chrono::milliseconds Spread(std::chrono::milliseconds wait, double fraction) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(wait * UniformBetween(1.0 - fraction, 1.0));
}

std::chrono::milliseconds Backoff::Next() {
  if (failures_ < 64) ++failures_;
  const auto step = BackoffStep(policy_, failures_);
  return std::chrono::duration_cast<std::chrono::milliseconds>(step * BackoffJitter());
}

}  // namespace sigil
