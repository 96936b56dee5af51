// serverd as one object: everything `serverd run` starts, in order, and stops in reverse.
// Key store, datastore, CA (and its rotation timer), entry rules, the admin API on its socket
// with the methods that need the CA (bundle, x509 and jwt minting, health), and the agent API.
//
// Thread safety: Start and Stop from the owning thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "core/failure_log.h"
#include "core/metrics.h"
#include "hw/key_store.h"
#include "serverd/admin/admin_api.h"
#include "serverd/admin/admin_server.h"
#include "serverd/api/agent_api.h"
#include "serverd/attestor/node_attestor.h"
#include "serverd/audit_log.h"
#include "serverd/ca/ca_manager.h"
#include "serverd/datastore/datastore.h"
#include "serverd/entry/entry_service.h"
#include "serverd/federation/bundle_endpoint.h"
#include "serverd/federation/bundle_refresher.h"
#include "serverd/federation/federated_bundles.h"
#include "serverd/oidc/oidc_discovery.h"
#include "serverd/server_config.h"
#include "transport/event_loop.h"
#include "transport/http_get_server.h"
#include "transport/metrics_endpoint.h"

namespace sigil::serverd {

class Server {
 public:
  explicit Server(ServerConfig config) : config_(std::move(config)) {}
  ~Server();

  // Everything up and listening, or the first failure (nothing left running).
  Status Start();
  void Stop();

  // OK when the key store and datastore answer. Blocks on both: off any event loop.
  Status Ready();

 private:
  void RegisterCaMethods();
  // The SPIFFE ID a Mint call asked for, if it is one and in serverd's trust domain.
  Result<SpiffeId> MintableSpiffeId(const std::string& text) const;
  void RotationLoop();
  Status StartProbes();
  Status StartOidcDiscovery();
  Status StartFederation();
  // Off the loop (start, the rotation thread, after each admin call): the readiness and the
  // datastore gauges the probe loop serves.
  void RefreshProbeState();
  // Loop: the last readiness, Unavailable when it is older than kReadinessMaxAge.
  Status CachedReadiness();
  static constexpr std::chrono::seconds kReadinessMaxAge{5};

  ServerConfig config_;
  MetricsRegistry metrics_;
  std::unique_ptr<hw::KeyStore> keys_;
  std::unique_ptr<Datastore> store_;
  std::unique_ptr<AuditLog> audit_;  // when server.audit_log_enabled; outlives the APIs that record in it
  std::unique_ptr<EntryService> entries_;
  std::unique_ptr<CaManager> ca_;
  std::unique_ptr<FederatedBundles> federated_;
  FailureLog federated_failures_{LogLevel::kError, "reading the federated bundles failed; will retry",
                                 std::chrono::minutes(1)};
  std::unique_ptr<AdminApi> admin_api_;
  std::unique_ptr<AdminServer> admin_server_;
  std::vector<std::unique_ptr<NodeAttestor>> node_attestors_;
  std::unique_ptr<AgentApi> agent_api_;
  transport::LoopThread probe_loop_;  // /live, /ready, /metrics, OIDC discovery, the bundle endpoint
  std::unique_ptr<transport::HttpGetServer> health_server_;
  std::unique_ptr<OidcDiscovery> oidc_;             // listens on probe_loop_
  std::unique_ptr<BundleEndpoint> bundle_endpoint_;  // listens on probe_loop_
  std::unique_ptr<BundleRefresher> bundle_refresher_;
  std::unique_ptr<transport::MetricsEndpoint> metrics_server_;
  bool probes_started_ = false;
  std::mutex probe_mutex_;
  Status readiness_ = Status(Code::kUnavailable, "serverd is starting");  // guarded by probe_mutex_
  std::chrono::steady_clock::time_point readiness_checked_;               // guarded by probe_mutex_

  std::thread rotation_thread_;
  std::mutex rotation_mutex_;
  std::condition_variable rotation_wake_;
  bool ca_changed_ = false;  // by an admin call: the rotation thread publishes the new bundle
  // By a commit to bundles, relationships or the CA journal, this replica's or another's: the
  // rotation thread reads them again now rather than at its next tick.
  bool store_changed_ = false;
  ChangeFeed::Subscription store_changes_;
  bool stopping_ = false;
};

}  // namespace sigil::serverd
