#include "serverd/server.h"

#include <sys/stat.h>

#include "core/base64url.h"
#include "core/file.h"
#include "core/cli/command_line.h"
#include "core/jwt_svid.h"
#include "core/log.h"
#include "core/x509_svid.h"
#include "serverd/admin/entry_json.h"
#include "serverd/admin/federation_api.h"
#include "serverd/admin/localauthority_api.h"
#include "serverd/datastore/postgres_datastore.h"
#include "serverd/datastore/sqlite_datastore.h"
#include "serverd/datastore/timed_datastore.h"
#include "transport/owned_directory.h"

namespace sigil::serverd {

using nlohmann::json;

namespace {

Result<std::unique_ptr<Datastore>> OpenDatastore(const ServerConfig& config) {
  if (config.datastore_kind == DatastoreKind::kSqlite) return OpenSqliteDatastore(config.sqlite_path);
  PostgresOptions options{.connection_string = config.postgres_connection_string,
                          .max_connections = config.postgres_max_connections};
  if (!config.postgres_password_file.empty()) {
    SIGIL_ASSIGN_OR_RETURN(options.password, ReadWholeFile(config.postgres_password_file, "datastore password_file"));
    while (!options.password.empty() && (options.password.back() == '\n' || options.password.back() == '\r')) {
      options.password.pop_back();
    }
    if (options.password.empty()) {
      return InvalidArgumentError("datastore password_file " + config.postgres_password_file.string() + " is empty");
    }
  }
  return OpenPostgresDatastore(options);
}

}  // namespace

Server::~Server() { Stop(); }

Status Server::Start() {
  // Both before anything else: a directory another user prepared is refused before serverd
  // opens its key store or keeps anything in it.
  SIGIL_RETURN_IF_ERROR(transport::EnsureOwnedDirectory(config_.data_dir, 0700, "data_dir"));
  SIGIL_RETURN_IF_ERROR(
      transport::EnsureOwnedDirectory(config_.socket_path.parent_path(), 0700, "admin socket directory"));
  SIGIL_ASSIGN_OR_RETURN(keys_, hw::OpenKeyStore(config_.key_store));
  SIGIL_ASSIGN_OR_RETURN(std::unique_ptr<Datastore> store, OpenDatastore(config_));
  store_ = std::make_unique<TimedDatastore>(std::move(store), &metrics_);
  if (config_.audit_log_enabled) {
    SIGIL_ASSIGN_OR_RETURN(audit_, AuditLog::Open(config_.audit_log_path));
  }
  entries_ = std::make_unique<EntryService>(config_.trust_domain, *store_);
  CaManagerOptions ca_options;
  ca_options.trust_domain = config_.trust_domain;
  ca_options.key_type = config_.ca_key_type;
  ca_options.ca_ttl = config_.ca_ttl;
  ca_options.subject = {config_.ca_subject.country, config_.ca_subject.organization, config_.ca_subject.common_name};
  ca_options.mode = config_.ca_mode;
  ca_options.delegated_ca_ttl = config_.delegated_ca_ttl;
  ca_options.replica = config_.replica_name;
  ca_ = std::make_unique<CaManager>(ca_options, *keys_, *store_, &metrics_);
  SIGIL_RETURN_IF_ERROR(ca_->Start(std::chrono::system_clock::now()));
  federated_ = std::make_unique<FederatedBundles>(*store_);
  SIGIL_RETURN_IF_ERROR(federated_->Reload().AddContext("reading the federated bundles"));
  admin_api_ = std::make_unique<AdminApi>(*entries_, *store_, *federated_);
  RegisterCaMethods();
  // An operator's change to the CA reaches the bundle endpoint, the OIDC keys and serverd's own
  // SVID through the rotation thread, woken now rather than at its next tick.
  RegisterLocalAuthorityMethods(*admin_api_, *ca_, [this] {
    {
      std::lock_guard lock(rotation_mutex_);
      ca_changed_ = true;
    }
    rotation_wake_.notify_all();
  });
  AgentApiOptions agent_options;
  agent_options.bind_address = config_.bind_address;
  agent_options.bind_port = config_.bind_port;
  agent_options.http2 = config_.agent_api_limits;
  agent_options.max_csr_batch_items = config_.max_csr_batch_items;
  agent_options.agent_workers.queue_capacity = config_.max_queued_agent_requests;
  agent_options.attestations_per_ip = config_.attestations_per_ip;
  agent_options.svids_per_agent = config_.svids_per_agent;
  agent_options.agent_svid_ttl = config_.agent_ttl;
  agent_options.default_x509_svid_ttl = config_.default_x509_svid_ttl;
  agent_options.default_jwt_svid_ttl = config_.default_jwt_svid_ttl;
  agent_options.jwt_issuer = config_.jwt_issuer;
  agent_options.audit = audit_.get();
  agent_options.pipeline.workers = config_.signing_workers;
  agent_options.pipeline.max_batch = static_cast<size_t>(config_.signing_max_batch);
  agent_options.pipeline.max_wait = std::chrono::microseconds(config_.signing_max_wait_us);
  agent_options.pipeline.queue_capacity = static_cast<size_t>(config_.signing_queue_capacity);
  agent_options.pipeline.metric_labels = {{"key_store", std::string(hw::KeyStoreKindName(config_.key_store.kind))}};
  agent_api_ = std::make_unique<AgentApi>(agent_options, config_.trust_domain, *store_, *entries_, *ca_, *federated_,
                                          &metrics_);
  for (const ConfiguredNodeAttestor& configured : config_.node_attestors) {
    auto attestor = configured.make(NodeAttestorDeps{.store = *store_});
    if (!attestor.ok()) return std::move(attestor).status().AddContext("node_attestors." + configured.name);
    agent_api_->AddNodeAttestor(attestor->get());
    node_attestors_.push_back(std::move(*attestor));
  }
  SIGIL_RETURN_IF_ERROR(agent_api_->Start());
  RefreshProbeState();
  SIGIL_RETURN_IF_ERROR(StartProbes());
  SIGIL_RETURN_IF_ERROR(StartOidcDiscovery());
  SIGIL_RETURN_IF_ERROR(StartFederation());
  // The admin socket last: `serverd healthcheck` answering means every listener is up.
  std::set<uint32_t> uids(config_.admin_uids.begin(), config_.admin_uids.end());
  admin_server_ = std::make_unique<AdminServer>(*admin_api_, uids, audit_.get());
  // What an admin call changed shows in the next scrape, not a second later.
  admin_server_->SetAfterEachCall([this] { RefreshProbeState(); });
  SIGIL_RETURN_IF_ERROR(admin_server_->Start(config_.socket_path.string()));
  store_changes_ = store_->changes().Subscribe([this](StoreChange change) {
    if (change == StoreChange::kEntries) return;  // the agent API's own subscription
    if (change == StoreChange::kCaJournal) ca_->JournalChanged();
    {
      std::lock_guard lock(rotation_mutex_);
      store_changed_ = true;
    }
    rotation_wake_.notify_all();
  });
  rotation_thread_ = std::thread([this] { RotationLoop(); });
  LogInfo("serverd started", {{"trust_domain", config_.trust_domain.name()},
                              {"key_store", std::string(hw::KeyStoreKindName(config_.key_store.kind))}});
  return Status::Ok();
}

void Server::Stop() {
  store_changes_ = {};
  {
    std::lock_guard lock(rotation_mutex_);
    stopping_ = true;
  }
  rotation_wake_.notify_all();
  if (rotation_thread_.joinable()) rotation_thread_.join();
  if (bundle_refresher_) bundle_refresher_->Stop();
  if (agent_api_) agent_api_->Stop();
  if (admin_server_) admin_server_->Stop();
  if (probes_started_) {
    probe_loop_.loop().Invoke([&] {
      health_server_.reset();
      metrics_server_.reset();
      if (oidc_) oidc_->Close();
      if (bundle_endpoint_) bundle_endpoint_->Close();
    });
    probe_loop_.Stop();
    probes_started_ = false;
  }
}

Status Server::StartOidcDiscovery() {
  if (!config_.oidc_discovery.enabled()) return Status::Ok();
  oidc_ = std::make_unique<OidcDiscovery>(config_.oidc_discovery);
  SIGIL_RETURN_IF_ERROR(oidc_->SetKeys(ca_->current()->bundle.jwt));
  if (!probes_started_) {
    probe_loop_.Start();
    probes_started_ = true;
  }
  return probe_loop_.loop().Invoke([&] { return oidc_->Listen(&probe_loop_.loop()); }).AddContext("oidc_discovery");
}

Status Server::StartFederation() {
  const FederationConfig& federation = config_.federation;
  if (federation.bundle_endpoint.enabled) {
    bundle_endpoint_ = std::make_unique<BundleEndpoint>(federation.bundle_endpoint);
    SIGIL_RETURN_IF_ERROR(bundle_endpoint_->SetBundle(ca_->current()->bundle));
    SIGIL_RETURN_IF_ERROR(bundle_endpoint_->SetServerCredentials(agent_api_->server_credentials()));
    if (!probes_started_) {
      probe_loop_.Start();
      probes_started_ = true;
    }
    SIGIL_RETURN_IF_ERROR(probe_loop_.loop()
                              .Invoke([&] { return bundle_endpoint_->Listen(&probe_loop_.loop()); })
                              .AddContext("federation.bundle_endpoint"));
  }
  bundle_refresher_ =
      std::make_unique<BundleRefresher>(federation.federates_with, config_.trust_domain, *store_, *federated_);
  SIGIL_RETURN_IF_ERROR(bundle_refresher_->Start());
  RegisterFederationMethods(*admin_api_, config_.trust_domain, *store_, *bundle_refresher_);
  return Status::Ok();
}

Status Server::StartProbes() {
  const HealthCheckConfig& health = config_.health_checks;
  if (!health.listener_enabled && !config_.telemetry.enabled()) return Status::Ok();
  probe_loop_.Start();
  probes_started_ = true;
  return probe_loop_.loop().Invoke([&]() -> Status {
    if (health.listener_enabled) {
      health_server_ = std::make_unique<transport::HttpGetServer>(&probe_loop_.loop());
      health_server_->Route(health.live_path, [] { return transport::HttpGetResponse{200, "application/json", "{}\n"}; });
      health_server_->Route(health.ready_path, [this] {
        const Status ready = CachedReadiness();
        return ready.ok() ? transport::HttpGetResponse{200, "application/json", "{}\n"}
                          : transport::HttpGetResponse{503, "application/json",
                                                         json{{"error", ready.message()}}.dump() + "\n"};
      });
      SIGIL_RETURN_IF_ERROR(health_server_->Listen(health.bind_address, health.bind_port));
      LogInfo("health checks listening", {{"address", health.bind_address + ":" + std::to_string(health_server_->port())}});
    }
    if (config_.telemetry.enabled()) {
      metrics_server_ = std::make_unique<transport::MetricsEndpoint>(
          &probe_loop_.loop(), &metrics_,
          transport::MetricsEndpointOptions{.service = "spire_server",
                                            .version = std::string(SigilVersion()),
                                            .trust_domain = config_.trust_domain.name()});
      SIGIL_RETURN_IF_ERROR(metrics_server_->Listen(config_.telemetry));
    }
    return Status::Ok();
  });
}

void Server::RefreshProbeState() {
  if (auto entries = store_->CountEntries(); entries.ok()) {
    metrics_.GetGauge("sigil_server_entries", "Registration entries in the datastore").Set(*entries);
  }
  if (auto agents = store_->CountAgents(); agents.ok()) {
    metrics_.GetGauge("sigil_server_agents", "Attested agents").Set(*agents);
  }
  Status ready = Ready();
  std::lock_guard lock(probe_mutex_);
  readiness_ = std::move(ready);
  readiness_checked_ = std::chrono::steady_clock::now();
}

Status Server::CachedReadiness() {
  std::lock_guard lock(probe_mutex_);
  const auto age = std::chrono::steady_clock::now() - readiness_checked_;
  if (age > kReadinessMaxAge) {
    // The check itself hangs (a token or disk that stopped answering): that is not ready.
    return Status(Code::kUnavailable, "the readiness check has not finished for " +
                                          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(age).count()) + "s");
  }
  return readiness_;
}

Status Server::Ready() {
  if (!store_ || !keys_ || !ca_) return Status(Code::kUnavailable, "serverd is starting");
  if (Status ping = store_->Ping(); !ping.ok()) return Status(Code::kUnavailable, "datastore: " + ping.message());
  // A lookup of a label that is never used: NotFound proves the token or TPM answered.
  auto probe = keys_->FindKey("readiness-probe");
  if (!probe.ok() && probe.status().code() != Code::kNotFound) {
    return Status(Code::kUnavailable, "key store: " + probe.status().message());
  }
  // A token that answers lookups may still have lost the handles of the keys the CA signs
  // with, so the keys sign a throwaway message, as SPIRE's CA health check signs. When nothing
  // else signs, this is also what heals them.
  auto current = ca_->current();
  for (Signer* key : {&current->issuer->signer(), current->jwt_key.get()}) {
    auto signature = key->SignMessage(DefaultSchemeFor(key->key_type()), AsBytes("serverd readiness probe"));
    if (!signature.ok()) return Status(Code::kUnavailable, "the CA cannot sign: " + signature.status().message());
  }
  return Status::Ok();
}

void Server::RotationLoop() {
  // CA rotation signs with the token's key, so it runs here, never on an event loop; so do the
  // datastore and key-store reads behind /ready and /metrics, whose handlers run on a loop.
  std::unique_lock lock(rotation_mutex_);
  while (!stopping_) {
    const bool changed_by_admin = std::exchange(ca_changed_, false);
    store_changed_ = false;
    lock.unlock();
    const uint64_t federated_version = federated_->Current()->version;
    auto changed = ca_->Tick(std::chrono::system_clock::now());
    if (changed.ok() && changed_by_admin) changed = true;
    if (!changed.ok()) LogError("CA rotation failed; will retry", {{"error", changed.status().ToString()}});
    if (oidc_) {
      if (changed.ok() && *changed) {
        if (Status keys = oidc_->SetKeys(ca_->current()->bundle.jwt); !keys.ok()) {
          LogError("rendering the OIDC key set failed; the old one is served", {{"error", keys.ToString()}});
        }
      }
      oidc_->ReloadServingCertificate(std::chrono::steady_clock::now());
    }
    if (bundle_endpoint_) {
      if (changed.ok() && *changed) {
        if (Status set = bundle_endpoint_->SetBundle(ca_->current()->bundle); !set.ok()) {
          LogError("rendering the bundle endpoint's document failed; the old one is served", {{"error", set.ToString()}});
        }
      }
      if (Status set = bundle_endpoint_->SetServerCredentials(agent_api_->server_credentials()); !set.ok()) {
        LogError("the bundle endpoint could not take serverd's renewed SVID", {{"error", set.ToString()}});
      }
      bundle_endpoint_->ReloadServingCertificate(std::chrono::steady_clock::now());
    }
    if (Status refreshed = agent_api_->RefreshCredentials(std::chrono::system_clock::now()); !refreshed.ok()) {
      LogError("renewing serverd's own SVID failed; will retry", {{"error", refreshed.ToString()}});
    }
    // Also picks up a bundle or relationship another replica's admin API changed in a shared
    // datastore.
    Status reloaded = federated_->Reload();
    if (reloaded.ok()) reloaded = bundle_refresher_->Reload();
    if (!reloaded.ok()) {
      federated_failures_.Failed({{"error", reloaded.ToString()}});
    } else {
      federated_failures_.Succeeded("federated bundles read again");
    }
    if ((changed.ok() && *changed) || federated_->Current()->version != federated_version) {
      agent_api_->WakeParkedSyncs();
    }
    RefreshProbeState();
    const auto next = std::min(ca_->NextEvent(), std::chrono::system_clock::now() + std::chrono::seconds(1));
    lock.lock();
    rotation_wake_.wait_until(lock, next, [&] { return stopping_ || ca_changed_ || store_changed_; });
  }
}

Result<SpiffeId> Server::MintableSpiffeId(const std::string& text) const {
  auto id = SpiffeId::Parse(text);
  if (!id.ok()) return std::move(id).status().AddContext("spiffe_id");
  if (!id->MemberOf(config_.trust_domain)) {
    return InvalidArgumentError("spiffe_id " + id->str() + " is not in trust domain " + config_.trust_domain.name());
  }
  return id;
}

void Server::RegisterCaMethods() {
  admin_api_->Register("/v1/bundle/GetBundle", [this](const json&) -> Result<json> {
    auto current = ca_->current();
    SIGIL_ASSIGN_OR_RETURN(std::string jwks, TrustBundleToJwks(current->bundle));
    SIGIL_ASSIGN_OR_RETURN(std::string pem, X509BundleToPem(current->bundle.x509));
    return json{{"trust_domain", config_.trust_domain.name()}, {"jwks", jwks}, {"pem", pem},
                {"sequence_number", current->bundle.sequence},
                {"tainted_x509_authorities", current->bundle.tainted_x509_authorities},
                {"tainted_jwt_authorities", current->bundle.tainted_jwt_authorities}};
  });
  admin_api_->Register("/v1/svid/MintX509SVID", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(MintX509SvidRequest request, MintX509SvidRequestFromJson(body));
    SIGIL_ASSIGN_OR_RETURN(SpiffeId id, MintableSpiffeId(request.spiffe_id));
    X509SvidParams params(id);
    params.ttl = request.ttl.count() > 0 ? request.ttl : config_.default_x509_svid_ttl;
    params.dns_names = std::move(request.dns_names);
    auto current = ca_->current();
    SIGIL_ASSIGN_OR_RETURN(X509SvidDer svid, MintX509SvidDerFromCsr(*current->issuer, request.csr, params));
    const std::string chain_pem = svid.ChainPem();
    SIGIL_ASSIGN_OR_RETURN(std::string bundle_pem, X509BundleToPem(current->bundle.x509));
    LogInfo("x509 SVID minted", {{"spiffe_id", id.str()}});
    ca_->CountSignedX509Svids(1);
    return json{{"svid_pem", chain_pem}, {"bundle_pem", bundle_pem}};
  });
  admin_api_->Register("/v1/svid/MintJWTSVID", [this](const json& body) -> Result<json> {
    SIGIL_ASSIGN_OR_RETURN(MintJwtSvidRequest request, MintJwtSvidRequestFromJson(body));
    SIGIL_ASSIGN_OR_RETURN(SpiffeId id, MintableSpiffeId(request.spiffe_id));
    JwtSvidParams params(id);
    params.ttl = request.ttl.count() > 0 ? request.ttl : config_.default_jwt_svid_ttl;
    params.issuer = config_.jwt_issuer;
    params.audience = std::move(request.audience);
    auto current = ca_->current();
    SIGIL_ASSIGN_OR_RETURN(JwtSvid token, MintJwtSvid(*current->jwt_key, current->jwt_key_id, params));
    ca_->CountSignedJwtSvid();
    return json{{"token", token.token}};
  });
  admin_api_->Register("/v1/health/Check", [this](const json&) -> Result<json> {
    SIGIL_RETURN_IF_ERROR(Ready());
    return json{{"status", "SERVING"}};
  });
}

}  // namespace sigil::serverd
