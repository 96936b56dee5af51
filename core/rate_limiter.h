// Token buckets: one may spend `per_second` on average and up to `burst` at once. serverd's
// agent API keeps them by key (a peer's IP address, an agent's SPIFFE ID) to bound how often
// one address may attest and how many SVIDs one agent may have signed; an HTTP/2 connection
// keeps one for the streams its peer resets before they were answered.
//
// Thread safety: a TokenBucket belongs to one thread; RateLimiterByKey's methods may be called
// from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sigil {

struct RateLimit {
  double per_second = 1;
  double burst = 1;
};

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts full.
  explicit TokenBucket(RateLimit limit, Clock::time_point now = Clock::now())
      : limit_(limit), tokens_(limit.burst), refilled_at_(now) {}

  // Spends `cost` and returns true, or returns false and spends nothing when the bucket holds
  // less.
  bool TrySpend(double cost, Clock::time_point now = Clock::now());
  // Whether it has filled up again: no different from a new bucket.
  bool Full(Clock::time_point now);

 private:
  void Refill(Clock::time_point now);

  RateLimit limit_;
  double tokens_;
  Clock::time_point refilled_at_;
};

class RateLimiterByKey {
 public:
  using Clock = TokenBucket::Clock;

  // At most `max_keys` buckets are kept. When they are all taken, the buckets that have filled
  // up again (no different from new ones) are dropped; if none has, all are, so that a peer
  // with more addresses than that costs memory no longer than one sweep.
  explicit RateLimiterByKey(RateLimit limit, size_t max_keys = 65'536) : limit_(limit), max_keys_(max_keys) {}

  // Spends `cost` from `key`'s bucket and returns true, or returns false and spends nothing
  // when the bucket holds less.
  bool TrySpend(std::string_view key, double cost, Clock::time_point now = Clock::now());

  const RateLimit& limit() const { return limit_; }

 private:
  void MakeRoom(Clock::time_point now);

  const RateLimit limit_;
  const size_t max_keys_;
  std::mutex mutex_;
  std::unordered_map<std::string, TokenBucket> buckets_;
};

}  // namespace sigil
