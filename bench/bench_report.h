// What every end-to-end scenario binary prints: one JSON object on stdout, read by tools/bench.
//
//   {"scenario": "agent_api_signing", "quick": false, "load_before": "1.52 1.10 0.98",
//    "metrics": {"delegated/soft/batch64/svids_per_s":
//                    {"value": 9123.4, "unit": "1/s", "ceiling": 15000.0, "higher_is_better": true}},
//    "distributions": {"delegated/soft/batch64/latency": {"unit": "ms", "cdf": [[0, 1.2], ...]}},
//    "series": {"serverd_cpu": {"unit": "cores", "points": [[1.0, 0.42], ...]}}}
//
// A metric may carry the ceiling it is judged against, measured in the same run, or be marked
// "detail" (kept out of the printed table); a distribution is a latency CDF (percentile, value) for the plot,
// a series a figure over time (seconds, value) for the plot over time. Progress and errors go to
// stderr. See bench/README.md for the whole contract.
//
// Thread safety: a Report belongs to one thread; the free functions are pure or read /proc.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace sigil::bench {

class Report {
 public:
  Report(std::string scenario, bool quick);

  void Metric(const std::string& name, double value, const std::string& unit, bool higher_is_better);
  void MetricWithCeiling(const std::string& name, double value, double ceiling, const std::string& unit);
  // A figure kept in results.json but left out of the printed table.
  void Detail(const std::string& name, double value, const std::string& unit);
  // `samples` are sorted in place.
  void Distribution(const std::string& name, std::vector<double>& samples, const std::string& unit);
  // A figure over the run, for the plot over time: (seconds since the run began, value) points,
  // e.g. each second's p99 latency or a process's CPU.
  void Series(const std::string& name, const std::vector<std::pair<double, double>>& points, const std::string& unit);
  // A problem that makes the scenario's figures incomplete; tools/bench shows it and fails.
  void Error(const std::string& message);

  // Prints the report on stdout.
  void Print();

 private:
  nlohmann::json out_;
};

// The value below which `fraction` (0..1) of the sorted `samples` lie; 0 when empty.
double Percentile(const std::vector<double>& sorted_samples, double fraction);

// /proc/loadavg's first three fields: the machine is shared, so every figure carries its load.
std::string LoadAverage();

// The resident set (VmRSS) in KiB of process `pid` (0: this one), or -1 when /proc cannot tell.
long ResidentKiB(pid_t pid = 0);

// The CPU time in seconds that process `pid` (0: this one) has had so far, all its threads
// summed, from each thread's schedstat (nanoseconds, where /proc/<pid>/stat counts 10 ms ticks):
// per-call costs are compared as CPU time, which another process's load barely moves, where
// latencies swing with it. -1 when /proc cannot tell.
double CpuSeconds(pid_t pid = 0);

// True when argv holds `flag` (e.g. "--quick").
bool HasFlag(int argc, char** argv, const std::string& flag);

// The main of a scenario program that takes only --quick: logging at warnings and above (the
// in-process serverd's info lines are not the figures), `run`, then the report, with `run`'s
// error in it; the exit status says whether `run` succeeded.
int ScenarioMain(int argc, char** argv, const std::string& scenario, Status (*run)(bool quick, Report& report));

}  // namespace sigil::bench
