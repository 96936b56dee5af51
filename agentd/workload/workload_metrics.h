// What the Workload API reports to /metrics. SPIRE's names where SPIRE has the measure:
//   spire_agent_rpc_workload_api_<method>{status} and _elapsed_time (core/call_metrics.h), for
//     fetch_x509svid, fetch_x509_bundles, fetch_jwtsvid, fetch_jwt_bundles, validate_jwtsvid;
//     a stream's time is its whole life, as SPIRE's
//   spire_agent_workload_api_connection (accepted) and _connections (open now)
// and Sigil's own:
//   sigil_agent_workload_api_calls_total{method, status}: every method, Health/Check included
//   sigil_agent_workload_api_fetch_latency_seconds{method}: from a fetch's request to its
//     first answer (the first message of a stream)
//   sigil_agent_workload_api_connections_refused_total: over workload_api_limits
//
// Thread safety: the Workload API's loop thread, except that the metrics are read by any.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "core/call_metrics.h"
#include "core/metrics.h"
#include "transport/grpc.h"
#include "transport/http2_server.h"

namespace sigil::agentd {

class WorkloadApiMetrics {
 public:
  // Records nothing when `registry` is null.
  explicit WorkloadApiMetrics(MetricsRegistry* registry);

  // `method` is the call's path ("/SpiffeWorkloadAPI/FetchX509SVID").
  void CallEnded(const transport::GrpcServerCall& call, const std::string& method, Code code);
  void FirstAnswer(const transport::GrpcServerCall& call, const std::string& method);
  // The connection gauges, from the server's counts: before each scrape.
  void ReadConnections(const transport::Http2Server& server);

 private:
  struct OfMethod {
    std::unique_ptr<CallCounter> spire;
    Histogram* first_answer = nullptr;  // fetches only
  };

  MetricsRegistry* registry_;
  std::map<std::string, OfMethod, std::less<>> methods_;
  Counter* accepted_ = nullptr;
  Gauge* open_ = nullptr;
  Counter* refused_ = nullptr;
};

}  // namespace sigil::agentd
