// SPIRE's call counter in the Prometheus text format: for one operation, a counter of calls by
// gRPC status (`<name>{status="OK"}`, as SPIRE names the codes) and a histogram of their
// elapsed time in milliseconds (`<name>_elapsed_time`), whose _sum and _count are the series
// SPIRE's own dashboards divide. SPIRE exports that time as a summary; a histogram keeps those
// two series and adds buckets a histogram_quantile can read across instances.
//
// Thread safety: Record from any thread; the metrics of one status are registered once, at
// its first call.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>

#include "core/metrics.h"
#include "core/status.h"

namespace sigil {

// The code as SPIRE's labels spell it (Go's codes.Code names): "OK", "PermissionDenied", ...
std::string_view SpireStatusName(Code code);

class CallCounter {
 public:
  // `name`: the whole Prometheus name, "spire_agent_rpc_workload_api_fetch_x509svid". A null
  // `registry` records nothing.
  CallCounter(MetricsRegistry* registry, std::string name, std::string help);
  CallCounter(const CallCounter&) = delete;
  CallCounter& operator=(const CallCounter&) = delete;

  void Record(Code code, std::chrono::steady_clock::duration elapsed);

 private:
  struct OfStatus {
    Counter* calls;
    Histogram* elapsed_ms;
  };
  const OfStatus* For(Code code);

  MetricsRegistry* registry_;
  std::string name_;
  std::string help_;
  static constexpr size_t kCodes = static_cast<size_t>(Code::kUnauthenticated) + 1;
  std::mutex registering_;  // taken only by a status's first call
  std::array<OfStatus, kCodes>
      storage_{};  // written under registering_, before of_status_ points at it
  std::array<std::atomic<const OfStatus*>, kCodes> of_status_{};
};

}  // namespace sigil
