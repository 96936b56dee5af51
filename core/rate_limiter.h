// Token buckets by key (a peer's IP address, an agent's SPIFFE ID): each key may spend
// `per_second` on average and up to `burst` at once. serverd's agent API uses them to bound
// how often one address may attest and how many SVIDs one agent may have signed.
//
// Thread safety: every method may be called from any thread.
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

class RateLimiterByKey {
 public:
  using Clock = std::chrono::steady_clock;

  // At most `max_keys` buckets are kept. When they are all taken, the buckets that have filled
  // up again (no different from new ones) are dropped; if none has, all are, so that a peer
  // with more addresses than that costs memory no longer than one sweep.
  explicit RateLimiterByKey(RateLimit limit, size_t max_keys = 65'536) : limit_(limit), max_keys_(max_keys) {}

  // Spends `cost` from `key`'s bucket and returns true, or returns false and spends nothing
  // when the bucket holds less.
  bool TrySpend(std::string_view key, double cost, Clock::time_point now = Clock::now());

  const RateLimit& limit() const { return limit_; }

 private:
  struct Bucket {
    double tokens;
    Clock::time_point refilled_at;
  };
  void Refill(Bucket& bucket, Clock::time_point now) const;
  void MakeRoom(Clock::time_point now);

  const RateLimit limit_;
  const size_t max_keys_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace sigil
