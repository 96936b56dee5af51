#include "transport/metrics_endpoint.h"

#include "core/log.h"

namespace sigil::transport {

MetricsEndpoint::MetricsEndpoint(EventLoop* loop, MetricsRegistry* registry,
                                 MetricsEndpointOptions options)
    : registry_(registry), options_(std::move(options)), server_(loop) {
  registry_
      ->GetGauge(options_.service + "_started",
                 "The running daemon's version and trust domain; always 1",
                 {{"version", options_.version}, {"trust_domain_id", options_.trust_domain}})
      .Set(1);
  uptime_ms_ = &registry_->GetGauge(options_.service + "_uptime_in_ms",
                                    "Time since the daemon started, in milliseconds");
  server_.Route("/metrics", [this] { return Scrape(); });
}

Status MetricsEndpoint::Listen(const PrometheusConfig& config) {
  SIGIL_RETURN_IF_ERROR(
      server_.Listen(config.host, config.port).AddContext("telemetry.prometheus"));
  LogInfo("metrics listening", {{"address", config.host + ":" + std::to_string(server_.port())}});
  return Status::Ok();
}

HttpGetResponse MetricsEndpoint::Scrape() {
  uptime_ms_->Set(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started_)
                      .count());
  if (options_.before_render) options_.before_render();
  return HttpGetResponse{200, "text/plain; version=0.0.4; charset=utf-8", registry_->Render()};
}

}  // namespace sigil::transport
