// The worker pool (and so the signing pipeline) under load: every job signed and completed exactly once, completions on
// their owning thread, batches formed, a full queue refused at once, and Stop draining the rest.
// Run under TSan by `SIGIL_SANITIZE=thread tools/test`.
#include "serverd/worker_pool.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <latch>
#include <mutex>
#include <thread>

namespace sigil::serverd {
namespace {

// A stand-in for an event loop: one thread that runs posted batches in order.
class LoopThread final : public CompletionTarget {
 public:
  LoopThread() : thread_([this] { Run(); }) {}
  ~LoopThread() override {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void PostBatch(std::vector<std::function<void()>> completions) override {
    {
      std::lock_guard lock(mutex_);
      pending_.push_back(std::move(completions));
      ++batches_posted_;
    }
    cv_.notify_one();
  }
  std::thread::id id() const { return thread_.get_id(); }
  int batches_posted() {
    std::lock_guard lock(mutex_);
    return batches_posted_;
  }

 private:
  void Run() {
    std::unique_lock lock(mutex_);
    while (true) {
      cv_.wait(lock, [&] { return done_ || !pending_.empty(); });
      if (pending_.empty()) return;
      auto batch = std::move(pending_.front());
      pending_.pop_front();
      lock.unlock();
      for (auto& f : batch) f();
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::vector<std::function<void()>>> pending_;
  int batches_posted_ = 0;
  bool done_ = false;
  std::thread thread_;
};

#if defined(__SANITIZE_THREAD__) || defined(SIGIL_THREAD_SANITIZER) || defined(__SANITIZE_ADDRESS__)
constexpr int kJobsPerProducer = 2000;
#else
constexpr int kJobsPerProducer = 20000;
#endif

TEST(WorkerPoolTest, EveryJobOnceAndCompletedOnItsLoop) {
  constexpr int kProducers = 4;
  MetricsRegistry metrics;
  LoopThread loops[2];
  std::vector<std::atomic<int>> signed_count(kProducers * kJobsPerProducer);
  std::vector<std::atomic<int>> completed_count(kProducers * kJobsPerProducer);
  std::atomic<int> wrong_thread{0};
  std::atomic<int> rejected{0};
  {
    WorkerPool pipeline({.queue_capacity = 1024, .workers = 2, .max_batch = 32,
                              .max_wait = std::chrono::microseconds(50)},
                             &metrics);
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        LoopThread& loop = loops[p % 2];
        for (int i = 0; i < kJobsPerProducer; ++i) {
          const int id = p * kJobsPerProducer + i;
          WorkerJob job;
          job.run = [&, id] { signed_count[id].fetch_add(1); };
          job.complete = [&, id] {
            if (std::this_thread::get_id() != loop.id()) wrong_thread.fetch_add(1);
            completed_count[id].fetch_add(1);
          };
          job.target = &loop;
          // Retry on back-pressure, as an agent does after its back-off.
          while (!pipeline.Submit(job).ok()) {
            rejected.fetch_add(1);
            std::this_thread::yield();
          }
        }
      });
    }
    for (auto& t : producers) t.join();
    pipeline.Stop();
  }
  for (int id = 0; id < kProducers * kJobsPerProducer; ++id) {
    ASSERT_EQ(signed_count[id].load(), 1) << "job " << id;
  }
  // The loops run their completions before exiting; wait for them by polling.
  for (int attempt = 0; attempt < 500; ++attempt) {
    int done = 0;
    for (auto& c : completed_count) done += c.load();
    if (done == kProducers * kJobsPerProducer) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (int id = 0; id < kProducers * kJobsPerProducer; ++id) {
    ASSERT_EQ(completed_count[id].load(), 1) << "job " << id;
  }
  EXPECT_EQ(wrong_thread.load(), 0);
  const std::string text = metrics.Render();
  EXPECT_NE(text.find("signing_items_total " + std::to_string(kProducers * kJobsPerProducer)), std::string::npos)
      << text;
  EXPECT_NE(text.find("signing_rejected_total " + std::to_string(rejected.load())), std::string::npos);
}

TEST(WorkerPoolTest, FullQueueIsRefusedAtOnceAndDrainsLater) {
  std::latch release(1);
  std::atomic<int> done{0};
  WorkerPool pipeline({.queue_capacity = 8, .workers = 1, .max_batch = 1,
                            .max_wait = std::chrono::microseconds(0)},
                           nullptr);
  // The first job holds the only worker, so the queue fills behind it.
  std::atomic<bool> worker_busy{false};
  ASSERT_TRUE(pipeline.Submit({.run = [&] { worker_busy = true; release.wait(); ++done; }}).ok());
  while (!worker_busy) std::this_thread::yield();
  int accepted = 0;
  Status refused;
  for (int i = 0; i < 100; ++i) {
    Status s = pipeline.Submit({.run = [&] { ++done; }});
    if (!s.ok()) {
      refused = s;
      break;
    }
    ++accepted;
  }
  EXPECT_EQ(accepted, static_cast<int>(8));  // the capacity, and not one more
  EXPECT_EQ(refused.code(), Code::kResourceExhausted);
  EXPECT_NE(refused.message().find("queue is full"), std::string::npos);
  release.count_down();
  pipeline.Stop();
  EXPECT_EQ(done.load(), 1 + accepted);
  EXPECT_EQ(pipeline.Submit({.run = [] {}}).code(), Code::kResourceExhausted);
}

TEST(WorkerPoolTest, QueuedJobsFormBatchesWithOneHandOffPerLoop) {
  MetricsRegistry metrics;
  LoopThread loop;
  std::latch release(1);
  std::atomic<bool> worker_busy{false};
  std::atomic<int> completed{0};
  {
    WorkerPool pipeline({.queue_capacity = 64, .workers = 1, .max_batch = 16,
                              .max_wait = std::chrono::microseconds(0)},
                             &metrics);
    ASSERT_TRUE(pipeline.Submit({.run = [&] { worker_busy = true; release.wait(); }}).ok());
    while (!worker_busy) std::this_thread::yield();
    for (int i = 0; i < 16; ++i) {
      ASSERT_TRUE(pipeline.Submit({.complete = [&] { ++completed; }, .target = &loop}).ok());
    }
    release.count_down();
    pipeline.Stop();
  }
  while (completed.load() < 16) std::this_thread::yield();
  EXPECT_EQ(loop.batches_posted(), 1);  // sixteen results, one hand-off
  EXPECT_NE(metrics.Render().find("signing_batch_size_bucket{le=\"10\"} 1\n"), std::string::npos)
      << metrics.Render();
  EXPECT_NE(metrics.Render().find("signing_batch_size_bucket{le=\"20\"} 2\n"), std::string::npos);
}

}  // namespace
}  // namespace sigil::serverd
