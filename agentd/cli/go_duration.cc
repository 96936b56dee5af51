#include "agentd/cli/go_duration.h"

#include <cctype>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sigil::agentd {

namespace {

// A decimal with `digits` fraction digits, trailing zeros dropped: Go's way of printing
// durations.
std::string Decimal(uint64_t whole, uint64_t fraction, int digits) {
  std::string out = std::to_string(whole);
  if (fraction == 0) return out;
  std::string frac = std::to_string(fraction);
  frac.insert(0, static_cast<size_t>(digits) - frac.size(), '0');
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  return out + "." + frac;
}

}  // namespace

Result<std::chrono::milliseconds> ParseGoDuration(std::string_view text) {
  const std::string original(text);
  if (text == "0") return std::chrono::milliseconds(0);
  if (text.empty()) return InvalidArgumentError("invalid duration ''");
  static const std::vector<std::pair<std::string_view, double>> kUnits = {
      {"ns", 1e-6}, {"us", 1e-3}, {"µs", 1e-3}, {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}};
  double total_ms = 0;
  while (!text.empty()) {
    size_t digits = 0;
    while (digits < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.')) {
      ++digits;
    }
    if (digits == 0) return InvalidArgumentError("invalid duration '" + original + "'");
    double value = 0;
    try {
      value = std::stod(std::string(text.substr(0, digits)));
    } catch (const std::exception&) {
      return InvalidArgumentError("invalid duration '" + original + "'");
    }
    text.remove_prefix(digits);
    const std::pair<std::string_view, double>* unit = nullptr;
    for (const auto& candidate : kUnits) {
      // The longest unit that fits: "ms" before "m".
      if (text.starts_with(candidate.first) &&
          (unit == nullptr || candidate.first.size() > unit->first.size())) {
        unit = &candidate;
      }
    }
    if (unit == nullptr)
      return InvalidArgumentError("missing or unknown unit in duration '" + original + "'");
    text.remove_prefix(unit->first.size());
    total_ms += value * unit->second;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total_ms));
}

std::string FormatGoDuration(std::chrono::nanoseconds duration) {
  const int64_t ns = duration.count();
  if (ns == 0) return "0s";
  if (ns < 0) return "-" + FormatGoDuration(-duration);
  const auto u = static_cast<uint64_t>(ns);
  if (u < 1'000) return std::to_string(u) + "ns";
  if (u < 1'000'000) return Decimal(u / 1'000, u % 1'000, 3) + "µs";
  if (u < 1'000'000'000) return Decimal(u / 1'000'000, u % 1'000'000, 6) + "ms";
  const uint64_t hours = u / 3'600'000'000'000;
  const uint64_t minutes = u / 60'000'000'000 % 60;
  const uint64_t rest = u % 60'000'000'000;
  std::string out;
  if (hours > 0) out += std::to_string(hours) + "h";
  if (hours > 0 || minutes > 0) out += std::to_string(minutes) + "m";
  return out + Decimal(rest / 1'000'000'000, rest % 1'000'000'000, 9) + "s";
}

}  // namespace sigil::agentd
