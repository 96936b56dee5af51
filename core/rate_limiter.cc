#include "core/rate_limiter.h"

#include <algorithm>
#include <iterator>

namespace sigil {

void TokenBucket::Refill(Clock::time_point now) {
  if (now <= refilled_at_) return;
  const double elapsed = std::chrono::duration<double>(now - refilled_at_).count();
  tokens_ = std::min(limit_.burst, tokens_ + elapsed * limit_.per_second);
  refilled_at_ = now;
}

bool TokenBucket::TrySpend(double cost, Clock::time_point now) {
  Refill(now);
  if (tokens_ < cost) return false;
  tokens_ -= cost;
  return true;
}

bool TokenBucket::Full(Clock::time_point now) {
  Refill(now);
  return tokens_ >= limit_.burst;
}

void RateLimiterByKey::MakeRoom(Clock::time_point now) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    it = it->second.Full(now) ? buckets_.erase(it) : std::next(it);
  }
  if (buckets_.size() >= max_keys_) buckets_.clear();
}

bool RateLimiterByKey::TrySpend(std::string_view key, double cost, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  std::string owned(key);
  auto found = buckets_.find(owned);
  if (found == buckets_.end()) {
    if (buckets_.size() >= max_keys_) MakeRoom(now);
    found = buckets_.emplace(std::move(owned), TokenBucket(limit_, now)).first;
  }
  return found->second.TrySpend(cost, now);
}

}  // namespace sigil
