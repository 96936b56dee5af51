#include "core/mpmc_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace sigil {
namespace {

// Sanitizers slow every atomic by an order of magnitude; the interleavings they check do not
// need a million items.
#if defined(__SANITIZE_THREAD__) || defined(SIGIL_THREAD_SANITIZER) || defined(__SANITIZE_ADDRESS__)
constexpr uint64_t kItemsPerProducer = 20'000;
#else
constexpr uint64_t kItemsPerProducer = 250'000;
#endif

TEST(MpmcQueue, CapacityIsRoundedUpToAPowerOfTwo) {
  EXPECT_EQ(MpmcQueue<int>(0).capacity(), 2u);
  EXPECT_EQ(MpmcQueue<int>(5).capacity(), 8u);
  EXPECT_EQ(MpmcQueue<int>(1024).capacity(), 1024u);
}

TEST(MpmcQueue, IsFifoAndReportsFullAndEmpty) {
  MpmcQueue<int> q(4);
  EXPECT_FALSE(q.TryPop().has_value());
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(q.TryPush(i));
  EXPECT_EQ(q.ApproxSize(), 4u);
  int rejected = 99;
  EXPECT_FALSE(q.TryPush(rejected)) << "a full queue must refuse, not grow";
  EXPECT_EQ(rejected, 99);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(q.TryPop(), i);
  EXPECT_FALSE(q.TryPop().has_value());
  // Several laps around the ring keep order.
  for (int lap = 0; lap < 10; ++lap) {
    EXPECT_TRUE(q.TryPush(lap * 2));
    EXPECT_TRUE(q.TryPush(lap * 2 + 1));
    EXPECT_EQ(q.TryPop(), lap * 2);
    EXPECT_EQ(q.TryPop(), lap * 2 + 1);
  }
}

TEST(MpmcQueue, HoldsMoveOnlyItemsAndDestroysLeftovers) {
  auto tracker = std::make_shared<int>(0);
  {
    MpmcQueue<std::unique_ptr<std::shared_ptr<int>>> q(8);
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(q.TryPush(std::make_unique<std::shared_ptr<int>>(tracker)));
    }
    EXPECT_EQ(tracker.use_count(), 6);
    auto one = q.TryPop();
    ASSERT_TRUE(one.has_value());
    EXPECT_EQ(**one, tracker);
  }
  EXPECT_EQ(tracker.use_count(), 1) << "items left in the queue must be destroyed with it";
}

TEST(MpmcQueue, PopBatchTakesAtMostMaxWithoutBlocking) {
  MpmcQueue<std::string> q(16);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(q.TryPush(std::to_string(i)));
  std::vector<std::string> out;
  EXPECT_EQ(q.TryPopBatch(out, 4), 4u);
  EXPECT_EQ(q.TryPopBatch(out, 100), 6u);
  EXPECT_EQ(q.TryPopBatch(out, 100), 0u);
  ASSERT_EQ(out.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(out[i], std::to_string(i));
}

TEST(MpmcQueue, BackPressureIsObservableAndClearsAfterAPop) {
  MpmcQueue<int> q(64);
  int pushed = 0;
  while (q.TryPush(pushed)) ++pushed;  // no consumer: the queue fills and then refuses
  EXPECT_EQ(pushed, 64);
  EXPECT_FALSE(q.TryPush(1000));
  EXPECT_EQ(q.TryPop(), 0);
  EXPECT_TRUE(q.TryPush(1000));
  EXPECT_FALSE(q.TryPush(1001));
}

// Several producers and consumers on a small ring: every item arrives exactly once, each
// producer's items arrive in order, and producers do meet a full queue.
TEST(MpmcQueue, StressDeliversEveryItemExactlyOnce) {
  constexpr int kProducers = 4;
  constexpr int kConsumers = 4;
  constexpr uint64_t kTotal = kProducers * kItemsPerProducer;
  MpmcQueue<uint64_t> q(256);

  std::vector<std::atomic<uint8_t>> seen(kTotal);
  std::atomic<uint64_t> consumed{0};
  std::atomic<uint64_t> full_count{0};
  std::atomic<bool> order_violation{false};

  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (uint64_t i = 0; i < kItemsPerProducer; ++i) {
        const uint64_t item = (static_cast<uint64_t>(p) << 32) | i;
        while (!q.TryPush(item)) {
          full_count.fetch_add(1, std::memory_order_relaxed);
          std::this_thread::yield();
        }
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      std::vector<uint64_t> last(kProducers, UINT64_MAX);
      std::vector<uint64_t> batch;
      while (consumed.load(std::memory_order_relaxed) < kTotal) {
        batch.clear();
        if (q.TryPopBatch(batch, 16) == 0) {
          std::this_thread::yield();
          continue;
        }
        for (uint64_t item : batch) {
          const auto producer = static_cast<size_t>(item >> 32);
          const uint64_t index = item & 0xffffffffu;
          // Per-producer order as this consumer sees it: indices only increase.
          if (last[producer] != UINT64_MAX && index <= last[producer]) order_violation = true;
          last[producer] = index;
          seen[producer * kItemsPerProducer + index].fetch_add(1, std::memory_order_relaxed);
        }
        consumed.fetch_add(batch.size(), std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : threads) t.join();

  EXPECT_EQ(consumed.load(), kTotal);
  uint64_t missing = 0, duplicated = 0;
  for (auto& s : seen) {
    const uint8_t n = s.load();
    if (n == 0) ++missing;
    if (n > 1) ++duplicated;
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(duplicated, 0u);
  EXPECT_FALSE(order_violation.load());
  EXPECT_GT(full_count.load(), 0u) << "a 256-slot ring under 4 producers should have filled up";
  EXPECT_FALSE(q.TryPop().has_value());
}

}  // namespace
}  // namespace sigil
