#include "serverd/worker_pool.h"

#include <map>

namespace sigil::serverd {

WorkerPoolMetrics::WorkerPoolMetrics(const WorkerPoolOptions& options, MetricsRegistry* metrics) {
  if (metrics == nullptr) return;
  const std::string name = "sigil_server_" + options.name;
  const MetricsRegistry::Labels& labels = options.metric_labels;
  queue_depth = &metrics->GetGauge(name + "_queue_depth", "Jobs waiting for a worker", labels);
  batch_size = &metrics->GetHistogram(name + "_batch_size", "Jobs a worker took at once",
                                      Histogram::ExponentialBounds(1, 1000), labels);
  latency = &metrics->GetHistogram(name + "_latency_seconds", "From enqueue to done, per job",
                                   Histogram::ExponentialBounds(1e-5, 10), labels);
  items = &metrics->GetCounter(name + "_items_total", "Jobs completed", labels);
  rejected = &metrics->GetCounter(name + "_rejected_total", "Jobs refused because the queue was full", labels);
}

WorkerPool::WorkerPool(Options options, MetricsRegistry* metrics)
    : workers_(std::move(options), metrics, &WorkerPool::RunBatch) {}

void WorkerPool::RunBatch(std::vector<WorkerJob>& batch) {
  std::map<CompletionTarget*, std::vector<std::function<void()>>> by_target;
  for (WorkerJob& job : batch) {
    if (job.run) job.run();
    if (!job.complete) continue;
    if (job.target == nullptr) {
      job.complete();
    } else {
      by_target[job.target].push_back(std::move(job.complete));
    }
  }
  for (auto& [target, completions] : by_target) target->PostBatch(std::move(completions));
}

}  // namespace sigil::serverd
