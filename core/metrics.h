// Metrics in the Prometheus text format: counters, gauges and histograms registered by name
// in a registry that renders them for /metrics. Names follow SPIRE's where SPIRE has one
// (svid_issued_total, ...).
//
// Thread safety: updating a metric is a few relaxed atomic operations, safe from any thread
// and cheap enough for the signing hot path; Render may run concurrently with updates and
// sees each value at some recent point.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sigil {

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Observations counted into fixed upper bounds (Prometheus `le` buckets), plus sum and count.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);

  void Observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative_counts;  // per bound, then +Inf last
    double sum = 0;
    uint64_t count = 0;
    // The bound below which `q` (0..1) of the observations fall, from the buckets.
    double Quantile(double q) const;
  };
  Snapshot Read() const;

  // 1, 2, 5, 10, 20, 50, ... up to `max`: latency buckets in one unit.
  static std::vector<double> ExponentialBounds(double min, double max);

 private:
  std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket (not cumulative), +Inf last
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micro_{0};  // sum in millionths, so it stays an integer atomic
};

class MetricsRegistry {
 public:
  // The same name (and labels) returns the same metric. `labels` like {{"type","x509"}}.
  using Labels = std::vector<std::pair<std::string, std::string>>;
  Counter& GetCounter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& GetGauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& GetHistogram(const std::string& name, const std::string& help,
                          const std::vector<double>& upper_bounds, const Labels& labels = {});

  // The Prometheus text exposition format (version 0.0.4).
  std::string Render() const;

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Family {
    Kind kind;
    std::string help;
    std::map<std::string, std::unique_ptr<Counter>> counters;  // by rendered label set
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
  };
  Family& FamilyOf(const std::string& name, Kind kind, const std::string& help);

  mutable std::mutex mutex_;  // guards registration and the maps, never the values
  std::map<std::string, Family> families_;
};

}  // namespace sigil
