// A worker pool behind a bounded lock-free queue: event loops hand it the work that may block
// or cost (datastore, attestors, CSR checks, signing with a key store) and never wait on it.
// Workers take up to max_batch jobs at a time (waiting at most max_wait for a batch to fill),
// run them, and hand each completion back to the loop that owns the request: one hand-off per
// loop per batch. serverd's signing pipeline is one such pool (signer workers, batches of up to
// max_batch); the agent API's request workers and the admin API's are others.
//
// A full queue is back-pressure: Submit answers ResourceExhausted at once, and the caller
// tells the peer to back off. Nothing grows without bound.
//
// Thread safety: Submit may be called from any thread. Stop is called once, by the owner.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/metrics.h"
#include "core/mpmc_queue.h"
#include "core/status.h"
#include "transport/event_loop.h"

namespace sigil::serverd {

// Where a job's completion runs: the event loop that owns the request.
class CompletionTarget {
 public:
  virtual ~CompletionTarget() = default;
  // Runs every function, in order, on the target's own thread. Called from a signer worker.
  virtual void PostBatch(std::vector<std::function<void()>> completions) = 0;
};

// The usual target: a libuv loop, woken once per batch.
class EventLoopCompletionTarget final : public CompletionTarget {
 public:
  explicit EventLoopCompletionTarget(transport::EventLoop& loop) : loop_(loop) {}
  void PostBatch(std::vector<std::function<void()>> completions) override {
    loop_.Post([completions = std::move(completions)] {
      for (const auto& complete : completions) complete();
    });
  }

 private:
  transport::EventLoop& loop_;
};

struct WorkerJob {
  std::function<void()> run;       // on a worker: does the work and keeps its result
  std::function<void()> complete;  // afterwards on `target` (or the worker when null)
  CompletionTarget* target = nullptr;
  std::chrono::steady_clock::time_point enqueued;  // set by Submit
};

class WorkerPool {
 public:
  struct Options {
    size_t queue_capacity = 8192;
    int workers = 2;
    size_t max_batch = 64;
    std::chrono::microseconds max_wait{100};
    // Prefix of the metric names, and what a refusal calls the queue ("signing" for the
    // signing pipeline).
    std::string name = "signing";
  };

  // `metrics` may be null; otherwise the pool registers <name>_queue_depth,
  // <name>_batch_size, <name>_latency_seconds, <name>_items_total and <name>_rejected_total.
  WorkerPool(Options options, MetricsRegistry* metrics);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // ResourceExhausted when the queue is full or the pool is stopping.
  Status Submit(WorkerJob job);

  // Refuses new jobs, finishes every queued one, and joins the workers.
  void Stop();

  size_t queue_depth() const { return queue_.ApproxSize(); }
  const Options& options() const { return options_; }

 private:
  void WorkerLoop();
  void RunBatch(std::vector<WorkerJob>& batch);

  const Options options_;
  MpmcQueue<WorkerJob> queue_;
  // Bumped on every submit and at stop; idle workers wait for it to change, so a job pushed
  // between a worker's empty pop and its wait is never missed.
  std::atomic<uint64_t> signal_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_submit_{0};
  std::vector<std::thread> workers_;

  Gauge* queue_depth_gauge_ = nullptr;
  Histogram* batch_size_ = nullptr;
  Histogram* latency_ = nullptr;
  Counter* items_ = nullptr;
  Counter* rejected_ = nullptr;
};

}  // namespace sigil::serverd
