// Worker pools behind a bounded lock-free queue: event loops hand them the work that may block
// or cost (datastore, attestors, CSR checks, signing with a key store) and never wait on it.
// Workers take up to max_batch jobs at a time (waiting at most max_wait for a batch to fill),
// run them, and hand the completions back to the loop that owns the request: one hand-off per
// loop per batch.
//
// BatchWorkers<Job> is the machinery for any job type: the queue, the threads, the batching,
// back-pressure and metrics; what a batch means is its handler's. WorkerPool runs closures on
// it (the agent API's request workers and the admin API's); serverd's signing pipeline runs
// typed signing jobs on it (serverd/ca/svid_signer.h), so its workers can group a batch.
//
// A full queue is back-pressure: Submit answers ResourceExhausted at once, and the caller
// tells the peer to back off. Nothing grows without bound.
//
// Thread safety: Submit may be called from any thread. Stop is called once, by the owner.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
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

struct WorkerPoolOptions {
  size_t queue_capacity = 8192;
  int workers = 2;
  size_t max_batch = 64;
  std::chrono::microseconds max_wait{100};
  // What the metric names say after sigil_server_, and what a refusal calls the queue
  // ("signing" for the signing pipeline).
  std::string name = "signing";
  // On each of the pool's metrics: the signing pipeline's {key_store="pkcs11"}.
  MetricsRegistry::Labels metric_labels;
};

// What a pool reports, under sigil_server_<name>_queue_depth, _batch_size, _latency_seconds,
// _items_total and _rejected_total. All null without a registry.
struct WorkerPoolMetrics {
  WorkerPoolMetrics(const WorkerPoolOptions& options, MetricsRegistry* metrics);
  Gauge* queue_depth = nullptr;
  Histogram* batch_size = nullptr;
  Histogram* latency = nullptr;
  Counter* items = nullptr;
  Counter* rejected = nullptr;
};

// A job of any type that says when it was queued (set by Submit, read for the latency metric).
template <typename Job>
concept QueuedJob = std::movable<Job> && requires(Job job) {
  { job.enqueued } -> std::convertible_to<std::chrono::steady_clock::time_point>;
};

template <QueuedJob Job>
class BatchWorkers {
 public:
  // Runs on a worker with the jobs it took, 1 to max_batch of them, in queue order. It may move
  // from the jobs but leaves the vector as it is.
  using BatchHandler = std::function<void(std::vector<Job>& batch)>;

  BatchWorkers(WorkerPoolOptions options, MetricsRegistry* metrics, BatchHandler handler)
      : options_(std::move(options)),
        queue_(options_.queue_capacity),
        metrics_(options_, metrics),
        handler_(std::move(handler)) {
    for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  }
  ~BatchWorkers() { Stop(); }
  BatchWorkers(const BatchWorkers&) = delete;
  BatchWorkers& operator=(const BatchWorkers&) = delete;

  // ResourceExhausted when the queue is full or the workers are stopping.
  Status Submit(Job job) {
    // Sequentially consistent with Stop's store then load: one of the two sees the other.
    in_submit_.fetch_add(1);
    if (stopping_.load()) {
      in_submit_.fetch_sub(1);
      return ResourceExhaustedError("the " + options_.name + " workers are stopping");
    }
    job.enqueued = std::chrono::steady_clock::now();
    const bool pushed = queue_.TryPush(std::move(job));
    if (pushed) {
      signal_.fetch_add(1, std::memory_order_release);
      signal_.notify_one();
    }
    in_submit_.fetch_sub(1);
    if (!pushed) {
      if (metrics_.rejected != nullptr) metrics_.rejected->Add();
      return ResourceExhaustedError("the " + options_.name + " queue is full (" +
                                    std::to_string(queue_.capacity()) + " jobs); retry after a back-off");
    }
    if (metrics_.queue_depth != nullptr) metrics_.queue_depth->Set(static_cast<int64_t>(queue_.ApproxSize()));
    return Status::Ok();
  }

  // Refuses new jobs, finishes every queued one, and joins the workers.
  void Stop() {
    if (stopping_.exchange(true)) {
      for (auto& worker : workers_) {
        if (worker.joinable()) worker.join();
      }
      return;
    }
    // A Submit that saw stopping_ false may still be pushing; its job must be drained too.
    while (in_submit_.load() != 0) std::this_thread::yield();
    signal_.fetch_add(1, std::memory_order_release);
    signal_.notify_all();
    for (auto& worker : workers_) worker.join();
  }

  size_t queue_depth() const { return queue_.ApproxSize(); }
  const WorkerPoolOptions& options() const { return options_; }

 private:
  void WorkerLoop() {
    std::vector<Job> batch;
    batch.reserve(options_.max_batch);
    while (true) {
      const uint64_t seen = signal_.load(std::memory_order_acquire);
      batch.clear();
      queue_.TryPopBatch(batch, options_.max_batch);
      if (batch.empty()) {
        if (stopping_.load(std::memory_order_acquire) && in_submit_.load(std::memory_order_acquire) == 0) {
          // Stop waits for submitters before waking us, so an empty queue now stays empty.
          if (queue_.ApproxSize() == 0) return;
          continue;
        }
        signal_.wait(seen, std::memory_order_acquire);
        continue;
      }
      if (batch.size() < options_.max_batch && options_.max_wait.count() > 0) {
        // A short wait lets a burst from several loops share one batch and one hand-off per loop.
        const auto deadline = std::chrono::steady_clock::now() + options_.max_wait;
        while (batch.size() < options_.max_batch && std::chrono::steady_clock::now() < deadline) {
          if (queue_.TryPopBatch(batch, options_.max_batch - batch.size()) == 0) std::this_thread::yield();
        }
      }
      RunBatch(batch);
    }
  }

  void RunBatch(std::vector<Job>& batch) {
    if (metrics_.queue_depth != nullptr) metrics_.queue_depth->Set(static_cast<int64_t>(queue_.ApproxSize()));
    if (metrics_.batch_size != nullptr) metrics_.batch_size->Observe(static_cast<double>(batch.size()));
    handler_(batch);
    if (metrics_.latency != nullptr) {
      // The whole batch is handed back at once, so each job is done when the batch is.
      const auto done = std::chrono::steady_clock::now();
      for (const Job& job : batch) {
        metrics_.latency->Observe(std::chrono::duration<double>(done - job.enqueued).count());
      }
    }
    if (metrics_.items != nullptr) metrics_.items->Add(batch.size());
  }

  const WorkerPoolOptions options_;
  MpmcQueue<Job> queue_;
  WorkerPoolMetrics metrics_;
  const BatchHandler handler_;
  // Bumped on every submit and at stop; idle workers wait for it to change, so a job pushed
  // between a worker's empty pop and its wait is never missed.
  std::atomic<uint64_t> signal_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_submit_{0};
  std::vector<std::thread> workers_;  // last: they start in the constructor and use the above
};

// Where a job's completion runs: the event loop that owns the request.
class CompletionTarget {
 public:
  virtual ~CompletionTarget() = default;
  // Runs every function, in order, on the target's own thread. Called from a worker.
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

// Closures on BatchWorkers: each job runs, and the completions of a batch go to their targets
// once per target.
class WorkerPool {
 public:
  using Options = WorkerPoolOptions;

  WorkerPool(Options options, MetricsRegistry* metrics);
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // ResourceExhausted when the queue is full or the pool is stopping.
  Status Submit(WorkerJob job) { return workers_.Submit(std::move(job)); }

  // Refuses new jobs, finishes every queued one, and joins the workers.
  void Stop() { workers_.Stop(); }

  size_t queue_depth() const { return workers_.queue_depth(); }
  const Options& options() const { return workers_.options(); }

 private:
  static void RunBatch(std::vector<WorkerJob>& batch);

  BatchWorkers<WorkerJob> workers_;
};

}  // namespace sigil::serverd
