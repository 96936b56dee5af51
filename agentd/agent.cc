#include "agentd/agent.h"

#include <sys/stat.h>

#include "core/cli/command_line.h"
#include "core/log.h"
#include "transport/owned_directory.h"

namespace sigil::agentd {

Agent::Agent(AgentConfig config) : config_(std::move(config)), cache_(config_.jwt_svid_cache_max_size) {}

Agent::~Agent() { Stop(); }

Status Agent::Start() {
  // Both before attesting: a directory another user prepared is refused before a join token
  // is spent or a key is kept in it (0755 for the socket's: every local user may connect).
  SIGIL_RETURN_IF_ERROR(transport::EnsureOwnedDirectory(config_.data_dir, 0700, "data_dir"));
  SIGIL_RETURN_IF_ERROR(transport::EnsureOwnedDirectory(config_.socket_path.parent_path(), 0755,
                                                        "Workload API socket directory"));
  client_loop_.Start();
  workload_loop_.Start();
  started_ = true;
  SIGIL_RETURN_IF_ERROR(StartServerClient());
  SIGIL_ASSIGN_OR_RETURN(AgentSvid::Established established, agent_svid_->Establish());
  SIGIL_RETURN_IF_ERROR(RestoreSvids(established));
  // Made before the Workload API and the probes, which ask the rotator whether the agent is
  // ready from their loop; started after them.
  sync_ = std::make_unique<EntrySync>(client_.get(), &cache_, agent_svid_.get(), &signal_, config_.retry);
  rotator_ = std::make_unique<SvidRotator>(client_.get(), &cache_, agent_svid_.get(), sync_.get(), &signal_,
                                           config_.workload_key_type, config_.retry);
  SIGIL_RETURN_IF_ERROR(StartWorkloadApi());
  SIGIL_RETURN_IF_ERROR(StartProbes());
  store_subscription_ = cache_.Subscribe([this] { store_signal_.Wake(); });
  store_thread_ = std::thread([this] { store_->Run(&cache_, &store_signal_, config_.retry); });
  sync_thread_ = std::thread([this] { sync_->Run(); });
  rotation_thread_ = std::thread([this] { rotator_->Run(); });
  LogInfo("agentd started", {{"agent", agent_svid_->id()}, {"socket", config_.socket_path.string()}});
  return Status::Ok();
}

void Agent::Stop() {
  if (!started_) return;
  started_ = false;
  signal_.Stop();
  // A long poll in flight ends when the client's connections close.
  if (client_) client_->Close();
  workload_loop_.loop().Invoke([&] {
    if (workload_api_) workload_api_->Stop();
    workload_api_.reset();
    health_server_.reset();
    metrics_server_.reset();
  });
  if (sync_thread_.joinable()) sync_thread_.join();
  if (rotation_thread_.joinable()) rotation_thread_.join();
  store_signal_.Stop();
  if (store_thread_.joinable()) store_thread_.join();
  if (store_subscription_ != 0) cache_.Unsubscribe(store_subscription_);
  client_.reset();
  workload_loop_.Stop();
  client_loop_.Stop();
  LogInfo("agentd stopped");
}

Status Agent::StartServerClient() {
  ServerClient::Options options;
  SIGIL_ASSIGN_OR_RETURN(options.endpoint, ServerEndpoint(config_.server_addresses.front(), config_.server_port));
  for (size_t i = 1; i < config_.server_addresses.size(); ++i) {
    SIGIL_ASSIGN_OR_RETURN(transport::Endpoint more, ServerEndpoint(config_.server_addresses[i], config_.server_port));
    options.more_endpoints.push_back(std::move(more));
  }
  options.trust_domain = config_.trust_domain;
  options.insecure_bootstrap = config_.insecure_bootstrap;
  options.metrics = &metrics_;
  client_ = std::make_unique<ServerClient>(options, &client_loop_.loop());
  agent_svid_ = std::make_unique<AgentSvid>(config_, client_.get());
  SIGIL_ASSIGN_OR_RETURN(loaded_bundle_, agent_svid_->LoadTrustBundle());
  if (config_.insecure_bootstrap && !client_->has_bundle()) {
    LogWarn("INSECURE BOOTSTRAP: serverd's certificate is not verified until its first answer brings the trust "
            "bundle; anyone on the path to serverd can impersonate it now. Set trust_bundle_path in production.");
  }
  return Status::Ok();
}

Status Agent::RestoreSvids(AgentSvid::Established established) {
  const auto dir = config_.data_dir / "svids";
  SIGIL_RETURN_IF_ERROR(transport::EnsureOwnedDirectory(dir, 0700, "workload SVID directory"));
  store_ = std::make_unique<SvidStore>(dir, config_.trust_domain);
  if (established == AgentSvid::Established::kAttested) {
    // Kept for an identity the agent no longer holds; serverd, reachable now, sends what this
    // one may have.
    if (Status cleared = store_->Clear(); !cleared.ok()) {
      LogWarn("could not remove the workload SVIDs kept by an earlier run", {{"error", cleared.ToString()}});
    }
    return Status::Ok();
  }
  SvidStore::Loaded loaded = store_->Load(Clock::now());
  if (loaded.entries.empty()) return Status::Ok();
  if (loaded.bundle) {
    cache_.SetBundle(*loaded.bundle);
  } else if (loaded_bundle_) {
    TrustBundle bundle(config_.trust_domain);
    bundle.x509 = *loaded_bundle_;
    cache_.SetBundle(std::move(bundle));
  }
  const size_t count = loaded.entries.size();
  const size_t federated = loaded.federated_bundles.size();
  // Without them a workload restarted meanwhile holds its SVID but cannot check a partner's.
  if (federated > 0) cache_.SetFederatedBundles(std::move(loaded.federated_bundles));
  cache_.Restore(std::move(loaded.entries));
  LogInfo("serving the workload SVIDs kept in data_dir until serverd answers",
          {{"svids", std::to_string(count)}, {"federated_bundles", std::to_string(federated)}});
  return Status::Ok();
}

Status Agent::StartWorkloadApi() {
  WorkloadApiOptions api;
  api.socket_path = config_.socket_path.string();
  api.http2 = config_.workload_api_limits;
  api.metrics = &metrics_;
  api.ready = [this] { return Ready(); };
  api.mint_jwt = [this](const RegistrationEntry& entry, std::vector<std::string> audience,
                        std::function<void(Result<WorkloadJwtSvid>)> done) {
    client_->MintJwtSvidAsync(entry.id, audience, [entry, done = std::move(done)](Result<JwtAnswer> answer) {
      if (!answer.ok()) return done(answer.status());
      WorkloadJwtSvid svid;
      svid.spiffe_id = entry.spiffe_id;
      svid.token = std::move(answer->token);
      svid.hint = entry.hint;
      svid.issued_at = Clock::now();
      svid.expires_at = answer->expires_at;
      done(std::move(svid));
    });
  };
  return workload_loop_.loop().Invoke([&]() -> Status {
    workload_api_ = std::make_unique<WorkloadApiServer>(&workload_loop_.loop(), &cache_, std::move(api));
    return workload_api_->Start();
  });
}

Status Agent::StartProbes() {
  SIGIL_RETURN_IF_ERROR(StartMetrics());
  const HealthCheckConfig& health = config_.health_checks;
  if (!health.listener_enabled) return Status::Ok();
  return workload_loop_.loop().Invoke([&]() -> Status {
    health_server_ = std::make_unique<transport::HttpGetServer>(&workload_loop_.loop());
    health_server_->Route(health.live_path, [] { return transport::HttpGetResponse{200, "application/json", "{}\n"}; });
    health_server_->Route(health.ready_path, [this] {
      return Ready() ? transport::HttpGetResponse{200, "application/json", "{}\n"}
                     : transport::HttpGetResponse{503, "application/json", "{\"error\":\"not synced with serverd yet\"}\n"};
    });
    SIGIL_RETURN_IF_ERROR(health_server_->Listen(health.bind_address, health.bind_port));
    LogInfo("health checks listening", {{"address", health.bind_address + ":" + std::to_string(health_server_->port())}});
    return Status::Ok();
  });
}

void Agent::UpdateCacheMetrics() {
  const auto snapshot = cache_.snapshot();
  int64_t with_svid = 0;
  for (const auto& [id, cached] : *snapshot->entries) with_svid += cached.svid != nullptr ? 1 : 0;
  metrics_.GetGauge("sigil_agent_cached_entries", "Registration entries of this agent in its cache")
      .Set(static_cast<int64_t>(snapshot->entries->size()));
  metrics_.GetGauge("sigil_agent_cached_x509_svids", "Workload X509-SVIDs in the cache").Set(with_svid);
  metrics_.GetGauge("spire_agent_jwt_svid_cache_size", "JWT-SVIDs in the cache")
      .Set(static_cast<int64_t>(cache_.jwt_count()));
}

Status Agent::StartMetrics() {
  if (!config_.telemetry.enabled()) return Status::Ok();
  return workload_loop_.loop().Invoke([&]() -> Status {
    metrics_server_ = std::make_unique<transport::MetricsEndpoint>(
        &workload_loop_.loop(), &metrics_,
        transport::MetricsEndpointOptions{.service = "spire_agent",
                                          .version = std::string(SigilVersion()),
                                          .trust_domain = config_.trust_domain.name(),
                                          .before_render = [this] {
                                            if (workload_api_) workload_api_->ReadConnectionMetrics();
                                            UpdateCacheMetrics();
                                          }});
    return metrics_server_->Listen(config_.telemetry);
  });
}

}  // namespace sigil::agentd
