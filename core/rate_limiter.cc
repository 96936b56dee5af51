#include "core/rate_limiter.h"

#include <algorithm>
#include <iterator>

namespace sigil {

void RateLimiterByKey::Refill(Bucket& bucket, Clock::time_point now) const {
  if (now <= bucket.refilled_at) return;
  const double elapsed = std::chrono::duration<double>(now - bucket.refilled_at).count();
  bucket.tokens = std::min(limit_.burst, bucket.tokens + elapsed * limit_.per_second);
  bucket.refilled_at = now;
}

void RateLimiterByKey::MakeRoom(Clock::time_point now) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    Refill(it->second, now);
    it = it->second.tokens >= limit_.burst ? buckets_.erase(it) : std::next(it);
  }
  if (buckets_.size() >= max_keys_) buckets_.clear();
}

bool RateLimiterByKey::TrySpend(std::string_view key, double cost, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  std::string owned(key);
  auto found = buckets_.find(owned);
  if (found == buckets_.end()) {
    if (buckets_.size() >= max_keys_) MakeRoom(now);
    found = buckets_.emplace(std::move(owned), Bucket{limit_.burst, now}).first;
  }
  Bucket& bucket = found->second;
  Refill(bucket, now);
  if (bucket.tokens < cost) return false;
  bucket.tokens -= cost;
  return true;
}

}  // namespace sigil
