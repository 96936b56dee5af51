#include "agentd/workload/workload_metrics.h"

namespace sigil::agentd {

WorkloadApiMetrics::WorkloadApiMetrics(MetricsRegistry* registry) : registry_(registry) {
  if (registry_ == nullptr) return;
  const struct {
    const char* path;
    const char* spire;
    bool fetch;
  } methods[] = {
      {"/SpiffeWorkloadAPI/FetchX509SVID", "fetch_x509svid", true},
      {"/SpiffeWorkloadAPI/FetchX509Bundles", "fetch_x509_bundles", true},
      {"/SpiffeWorkloadAPI/FetchJWTSVID", "fetch_jwtsvid", true},
      {"/SpiffeWorkloadAPI/FetchJWTBundles", "fetch_jwt_bundles", true},
      {"/SpiffeWorkloadAPI/ValidateJWTSVID", "validate_jwtsvid", false},
  };
  for (const auto& m : methods) {
    const std::string path = m.path;
    const std::string name = path.substr(path.rfind('/') + 1);
    OfMethod& of_method = methods_[path];
    of_method.spire = std::make_unique<CallCounter>(
        registry_, std::string("spire_agent_rpc_workload_api_") + m.spire,
        "Workload API " + name + " calls, by status");
    if (m.fetch) {
      // From a tenth of a millisecond (a warm cache) to 10 s (a JWT-SVID serverd signs slowly).
      of_method.first_answer =
          &registry_->GetHistogram("sigil_agent_workload_api_fetch_latency_seconds",
                                   "From a Workload API fetch's request to its first answer",
                                   Histogram::ExponentialBounds(1e-4, 10), {{"method", name}});
    }
  }
  accepted_ = &registry_->GetCounter("spire_agent_workload_api_connection",
                                     "Workload API connections accepted");
  open_ = &registry_->GetGauge("spire_agent_workload_api_connections",
                               "Workload API connections open now");
  refused_ = &registry_->GetCounter(
      "sigil_agent_workload_api_connections_refused_total",
      "Workload API connections closed at once for being over workload_api_limits");
}

void WorkloadApiMetrics::CallEnded(const transport::GrpcServerCall& call, const std::string& method,
                                   Code code) {
  if (registry_ == nullptr) return;
  const std::string name = method.substr(method.rfind('/') + 1);
  registry_
      ->GetCounter("sigil_agent_workload_api_calls_total",
                   "Workload API calls by method and status",
                   {{"method", name}, {"status", std::string(SpireStatusName(code))}})
      .Add();
  auto it = methods_.find(method);
  if (it != methods_.end())
    it->second.spire->Record(code, std::chrono::steady_clock::now() - call.started());
}

void WorkloadApiMetrics::FirstAnswer(const transport::GrpcServerCall& call,
                                     const std::string& method) {
  auto it = methods_.find(method);
  if (it == methods_.end() || it->second.first_answer == nullptr) return;
  it->second.first_answer->Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - call.started()).count());
}

void WorkloadApiMetrics::ReadConnections(const transport::Http2Server& server) {
  if (registry_ == nullptr) return;
  // Both counts only grow, and only this thread adds to the counters.
  accepted_->Add(server.stats().accepted - accepted_->value());
  refused_->Add(server.stats().refused_connections - refused_->value());
  open_->Set(static_cast<int64_t>(server.connection_count()));
}

}  // namespace sigil::agentd
