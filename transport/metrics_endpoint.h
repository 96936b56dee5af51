// GET /metrics for Prometheus: a MetricsRegistry in the text format on an HttpGetServer, with
// that listener's limits (64 connections, 16 per address, 5 s for a request). Beside the
// registry's metrics it exports the two gauges every SPIRE daemon does, under the daemon's
// prefix: <service>_started{version, trust_domain_id} 1 and <service>_uptime_in_ms.
//
// Thread safety: loop thread only, as HttpGetServer; the registry's metrics are updated from
// any thread.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "core/config.h"
#include "core/metrics.h"
#include "core/status.h"
#include "transport/event_loop.h"
#include "transport/http_get_server.h"

namespace sigil::transport {

struct MetricsEndpointOptions {
  std::string service;  // SPIRE's prefix: "spire_server", "spire_agent"
  std::string version;
  std::string trust_domain;  // the bare name, as SPIRE's trust_domain_id label has it
  // Runs on the loop before each scrape: gauges of state the loop owns (open connections).
  std::function<void()> before_render;
};

class MetricsEndpoint {
 public:
  MetricsEndpoint(EventLoop* loop, MetricsRegistry* registry, MetricsEndpointOptions options);

  Status Listen(const PrometheusConfig& config);
  int port() const { return server_.port(); }

 private:
  HttpGetResponse Scrape();

  MetricsRegistry* registry_;
  MetricsEndpointOptions options_;
  Gauge* uptime_ms_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  HttpGetServer server_;
};

}  // namespace sigil::transport
