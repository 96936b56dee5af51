#include "serverd/worker_pool.h"

#include <map>

namespace sigil::serverd {

WorkerPool::WorkerPool(Options options, MetricsRegistry* metrics)
    : options_(options), queue_(options.queue_capacity) {
  if (metrics != nullptr) {
    const std::string& name = options_.name;
    queue_depth_gauge_ = &metrics->GetGauge(name + "_queue_depth", "Jobs waiting for a worker");
    batch_size_ = &metrics->GetHistogram(name + "_batch_size", "Jobs a worker took at once",
                                         Histogram::ExponentialBounds(1, 1000));
    latency_ = &metrics->GetHistogram(name + "_latency_seconds", "From enqueue to done, per job",
                                      Histogram::ExponentialBounds(1e-5, 10));
    items_ = &metrics->GetCounter(name + "_items_total", "Jobs completed");
    rejected_ = &metrics->GetCounter(name + "_rejected_total", "Jobs refused because the queue was full");
  }
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

WorkerPool::~WorkerPool() { Stop(); }

Status WorkerPool::Submit(WorkerJob job) {
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
    if (rejected_ != nullptr) rejected_->Add();
    return ResourceExhaustedError("the " + options_.name + " queue is full (" + std::to_string(queue_.capacity()) +
                                  " jobs); retry after a back-off");
  }
  if (queue_depth_gauge_ != nullptr) queue_depth_gauge_->Set(static_cast<int64_t>(queue_.ApproxSize()));
  return Status::Ok();
}

void WorkerPool::Stop() {
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

void WorkerPool::WorkerLoop() {
  std::vector<WorkerJob> batch;
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

void WorkerPool::RunBatch(std::vector<WorkerJob>& batch) {
  if (queue_depth_gauge_ != nullptr) queue_depth_gauge_->Set(static_cast<int64_t>(queue_.ApproxSize()));
  if (batch_size_ != nullptr) batch_size_->Observe(static_cast<double>(batch.size()));
  std::map<CompletionTarget*, std::vector<std::function<void()>>> by_target;
  for (WorkerJob& job : batch) {
    if (job.run) job.run();
    if (latency_ != nullptr) {
      latency_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - job.enqueued).count());
    }
    if (!job.complete) continue;
    if (job.target == nullptr) {
      job.complete();
    } else {
      by_target[job.target].push_back(std::move(job.complete));
    }
  }
  if (items_ != nullptr) items_->Add(batch.size());
  for (auto& [target, completions] : by_target) target->PostBatch(std::move(completions));
}

}  // namespace sigil::serverd
