#include "bench/bench_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/log.h"

namespace sigil::bench {

using nlohmann::json;

Report::Report(std::string scenario, bool quick) {
  out_ = json{{"scenario", std::move(scenario)}, {"quick", quick}, {"load_before", LoadAverage()},
              {"metrics", json::object()}, {"distributions", json::object()}, {"errors", json::array()}};
}

void Report::Metric(const std::string& name, double value, const std::string& unit, bool higher_is_better) {
  out_["metrics"][name] = json{{"value", value}, {"unit", unit}, {"higher_is_better", higher_is_better}};
}

void Report::MetricWithCeiling(const std::string& name, double value, double ceiling, const std::string& unit) {
  out_["metrics"][name] = json{{"value", value}, {"unit", unit}, {"ceiling", ceiling}, {"higher_is_better", true}};
}

void Report::Detail(const std::string& name, double value, const std::string& unit) {
  out_["metrics"][name] = json{{"value", value}, {"unit", unit}, {"detail", true}};
}

void Report::Distribution(const std::string& name, std::vector<double>& samples, const std::string& unit) {
  std::sort(samples.begin(), samples.end());
  json cdf = json::array();
  for (int percent = 0; percent <= 100; ++percent) {
    cdf.push_back(json::array({percent, Percentile(samples, percent / 100.0)}));
  }
  cdf.push_back(json::array({99.9, Percentile(samples, 0.999)}));
  out_["distributions"][name] = json{{"unit", unit}, {"count", samples.size()}, {"cdf", cdf}};
}

void Report::Series(const std::string& name, const std::vector<std::pair<double, double>>& points,
                    const std::string& unit) {
  json out = json::array();
  for (const auto& [seconds, value] : points) out.push_back(json::array({seconds, value}));
  out_["series"][name] = json{{"unit", unit}, {"points", std::move(out)}};
}

void Report::Error(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  out_["errors"].push_back(message);
}

void Report::Print() {
  out_["load_after"] = LoadAverage();
  std::printf("%s\n", out_.dump(1).c_str());
  std::fflush(stdout);
}

double Percentile(const std::vector<double>& sorted_samples, double fraction) {
  if (sorted_samples.empty()) return 0;
  const double rank = fraction * static_cast<double>(sorted_samples.size() - 1);
  const auto below = static_cast<size_t>(std::floor(rank));
  const size_t above = std::min(below + 1, sorted_samples.size() - 1);
  const double weight = rank - static_cast<double>(below);
  return sorted_samples[below] * (1 - weight) + sorted_samples[above] * weight;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

long ResidentKiB(pid_t pid) {
  std::ifstream in(pid == 0 ? std::string("/proc/self/status") : "/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      long kib = -1;
      fields >> kib;
      return kib;
    }
  }
  return -1;
}

double CpuSeconds(pid_t pid) {
  const std::filesystem::path tasks =
      std::filesystem::path(pid == 0 ? std::string("/proc/self") : "/proc/" + std::to_string(pid)) / "task";
  std::error_code error;
  double nanoseconds = 0;
  bool any = false;
  for (const auto& task : std::filesystem::directory_iterator(tasks, error)) {
    std::ifstream in(task.path() / "schedstat");
    double on_cpu = 0;
    if (in >> on_cpu) {
      nanoseconds += on_cpu;
      any = true;
    }
  }
  return any ? nanoseconds / 1e9 : -1;
}

bool HasFlag(int argc, char** argv, const std::string& flag) {
  return std::find(argv + 1, argv + argc, flag) != argv + argc;
}

int ScenarioMain(int argc, char** argv, const std::string& scenario, Status (*run)(bool quick, Report& report)) {
  const bool quick = HasFlag(argc, argv, "--quick");
  ConfigureLogging(LogLevel::kWarn, LogFormat::kText);
  Report report(scenario, quick);
  const Status ran = run(quick, report);
  if (!ran.ok()) report.Error(ran.ToString());
  report.Print();
  return ran.ok() ? 0 : 1;
}

}  // namespace sigil::bench
