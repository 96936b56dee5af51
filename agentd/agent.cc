#include "agentd/agent.h"

#include <sys/stat.h>

#include <algorithm>
#include <future>
#include <random>
#include <span>

#include "core/base64url.h"
#include "core/csr.h"
#include "core/log.h"
#include "core/tpm_devid.h"
#include "core/wire/convert.h"
#include "core/x509_ca.h"
#include "core/x509_svid.h"
#include "hw/secret_file.h"
#include "hw/soft_key_store.h"
#include "hw/tpm_devid.h"
#include "transport/owned_directory.h"

namespace sigil::agentd {

namespace {

constexpr size_t kCsrBatchSize = 64;
constexpr int kBatchesInFlight = 4;
constexpr std::chrono::milliseconds kSyncWait{30'000};
constexpr std::chrono::milliseconds kFirstBackoff{500};
constexpr std::chrono::milliseconds kMaxBackoff{30'000};
// SVIDs are renewed this much before half-life, so the new one is in the cache (and pushed to
// watchers) by the time the old one reaches it.
constexpr std::chrono::milliseconds kRotationLead{1'000};

Bytes Concatenated(const std::vector<Bytes>& ders) {
  size_t size = 0;
  for (const Bytes& der : ders) size += der.size();
  Bytes out;
  out.reserve(size);
  for (const Bytes& der : ders) out.insert(out.end(), der.begin(), der.end());
  return out;
}

Result<std::vector<X509Ptr>> ParseChain(const std::vector<Bytes>& ders) {
  std::vector<X509Ptr> chain;
  for (const Bytes& der : ders) {
    SIGIL_ASSIGN_OR_RETURN(X509Ptr cert, CertFromDer(der));
    chain.push_back(std::move(cert));
  }
  if (chain.empty()) return InvalidArgumentError("an SVID without certificates");
  return chain;
}

// The validity of the leaf of `chain_der`, read from the certificate itself, for a server that
// does not state it.
Result<std::pair<TimePoint, TimePoint>> LeafValidity(const std::vector<Bytes>& chain_der) {
  if (chain_der.empty()) return InvalidArgumentError("an SVID without certificates");
  SIGIL_ASSIGN_OR_RETURN(std::vector<CertValidity> validity, CertValiditiesFromDer(chain_der.front()));
  return std::make_pair(validity.front().not_before, validity.front().not_after);
}

Result<std::shared_ptr<const transport::TlsCredentials>> CredentialsOf(const std::vector<Bytes>& chain_der,
                                                                       EVP_PKEY* key) {
  auto credentials = std::make_shared<transport::TlsCredentials>();
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParseChain(chain_der));
  credentials->leaf = std::move(chain.front());
  for (size_t i = 1; i < chain.size(); ++i) credentials->intermediates.push_back(std::move(chain[i]));
  credentials->key = UpRef(key);
  return std::shared_ptr<const transport::TlsCredentials>(std::move(credentials));
}

}  // namespace

Agent::Agent(AgentConfig config) : config_(std::move(config)), cache_() {}

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
  ServerClient::Options options;
  SIGIL_ASSIGN_OR_RETURN(options.endpoint, transport::Endpoint::Parse(config_.server_address + ":" +
                                                                         std::to_string(config_.server_port)));
  options.trust_domain = config_.trust_domain;
  options.insecure_bootstrap = config_.insecure_bootstrap;
  client_ = std::make_unique<ServerClient>(options, &client_loop_.loop());
  SIGIL_RETURN_IF_ERROR(LoadTrustBundle());
  if (config_.insecure_bootstrap && !client_->has_bundle()) {
    LogWarn("INSECURE BOOTSTRAP: serverd's certificate is not verified until its first answer brings the trust "
            "bundle; anyone on the path to serverd can impersonate it now. Set trust_bundle_path in production.");
  }

  if (Status restored = RestoreAgentSvid(); !restored.ok()) {
    if (restored.code() != Code::kNotFound) {
      LogWarn("the saved agent SVID cannot be used; attesting again", {{"error", restored.ToString()}});
    }
    SIGIL_RETURN_IF_ERROR(Attest());
  }

  WorkloadApiOptions api;
  api.socket_path = config_.socket_path.string();
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
  SIGIL_RETURN_IF_ERROR(workload_loop_.loop().Invoke([&]() -> Status {
    workload_api_ = std::make_unique<WorkloadApiServer>(&workload_loop_.loop(), &cache_, std::move(api));
    return workload_api_->Start();
  }));
  SIGIL_RETURN_IF_ERROR(StartProbes());
  sync_thread_ = std::thread([this] { SyncLoop(); });
  rotation_thread_ = std::thread([this] { RotationLoop(); });
  LogInfo("agentd started", {{"agent", agent_svid_->id.str()}, {"socket", config_.socket_path.string()}});
  return Status::Ok();
}

void Agent::Stop() {
  if (!started_) return;
  started_ = false;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  // A long poll in flight ends when the client's connections close.
  if (client_) client_->Close();
  workload_loop_.loop().Invoke([&] {
    if (workload_api_) workload_api_->Stop();
    workload_api_.reset();
    health_server_.reset();
  });
  if (sync_thread_.joinable()) sync_thread_.join();
  if (rotation_thread_.joinable()) rotation_thread_.join();
  client_.reset();
  workload_loop_.Stop();
  client_loop_.Stop();
  LogInfo("agentd stopped");
}

Status Agent::StartProbes() {
  const HealthCheckConfig& health = config_.health_checks;
  if (!health.listener_enabled) return Status::Ok();
  return workload_loop_.loop().Invoke([&]() -> Status {
    health_server_ = std::make_unique<transport::PlainHttpServer>(&workload_loop_.loop());
    health_server_->Route(health.live_path, [] { return transport::PlainHttpResponse{200, "application/json", "{}\n"}; });
    health_server_->Route(health.ready_path, [this] {
      return Ready() ? transport::PlainHttpResponse{200, "application/json", "{}\n"}
                     : transport::PlainHttpResponse{503, "application/json", "{\"error\":\"not synced with serverd yet\"}\n"};
    });
    SIGIL_RETURN_IF_ERROR(health_server_->Listen(health.bind_address, health.bind_port));
    LogInfo("health checks listening", {{"address", health.bind_address + ":" + std::to_string(health_server_->port())}});
    return Status::Ok();
  });
}

// ---- trust bundle and the agent's own SVID ----

Status Agent::LoadTrustBundle() {
  // A bundle saved by an earlier run is newer than the bootstrap file (it follows rotations).
  for (const auto& [path, what] : {std::pair{config_.data_dir / "bundle.pem", "saved trust bundle"},
                                  std::pair{config_.trust_bundle_path, "trust_bundle_path"}}) {
    if (path.empty()) continue;
    auto pem = hw::ReadWholeFile(path, what);
    if (!pem.ok()) {
      if (pem.status().code() == Code::kNotFound && std::string_view(what) == "saved trust bundle") continue;
      return pem.status();
    }
    auto bundle = X509BundleFromPem(config_.trust_domain, *pem);
    if (!bundle.ok()) return std::move(bundle).status().AddContext(std::string(what) + " " + path.string());
    return client_->SetBundle(*bundle).AddContext(std::string(what) + " " + path.string());
  }
  return Status::Ok();
}

Status Agent::SaveBundle(const TrustBundle& bundle) {
  SIGIL_ASSIGN_OR_RETURN(std::string pem, X509BundleToPem(bundle.x509));
  return hw::WriteSecretFile(config_.data_dir / "bundle.pem", AsBytes(pem), "trust bundle file");
}

Status Agent::RestoreAgentSvid() {
  SIGIL_ASSIGN_OR_RETURN(std::string chain_pem, hw::ReadWholeFile(config_.data_dir / "agent_svid.pem", "agent SVID"));
  SIGIL_ASSIGN_OR_RETURN(std::string key_pem, hw::ReadWholeFile(config_.data_dir / "agent_svid.key", "agent key"));
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, CertsFromPem(chain_pem));
  if (chain.empty()) return InvalidArgumentError("agent_svid.pem holds no certificate");
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, PrivateKeyFromPem(key_pem));
  if (CertNotAfter(chain.front().get()) <= Clock::now()) return FailedPreconditionError("the saved agent SVID has expired");
  SIGIL_ASSIGN_OR_RETURN(SpiffeId id, X509SvidSpiffeId(chain.front().get()));
  if (!id.MemberOf(config_.trust_domain)) {
    return FailedPreconditionError("the saved agent SVID is for " + id.str() + ", not trust domain " +
                                   config_.trust_domain.name());
  }
  AgentSvid svid{id, {}, std::move(key), {}, CertNotAfter(chain.front().get())};
  for (const auto& cert : chain) {
    SIGIL_ASSIGN_OR_RETURN(Bytes der, CertToDer(cert.get()));
    svid.chain_der.push_back(std::move(der));
  }
  const Clock::time_point not_before = CertNotBefore(chain.front().get());
  svid.renew_at = not_before + (svid.expires_at - not_before) / 2;
  LogInfo("re-using the agent SVID kept in data_dir", {{"agent", id.str()}});
  return UseAgentSvid(std::move(svid), false);
}

Status Agent::UseAgentSvid(AgentSvid svid, bool persist) {
  if (persist) {
    SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParseChain(svid.chain_der));
    std::vector<X509*> raw;
    for (const auto& cert : chain) raw.push_back(cert.get());
    SIGIL_ASSIGN_OR_RETURN(std::string chain_pem, CertsToPem(raw));
    SIGIL_ASSIGN_OR_RETURN(std::string key_pem, PrivateKeyToPkcs8Pem(svid.key.get()));
    // The key first: a crash between the two leaves a new key and an old SVID, which fails to
    // load and is replaced by attestation, never an SVID whose key is lost.
    Status written = hw::WriteSecretFile(config_.data_dir / "agent_svid.key", AsBytes(key_pem), "agent key file");
    OPENSSL_cleanse(key_pem.data(), key_pem.size());
    SIGIL_RETURN_IF_ERROR(written);
    SIGIL_RETURN_IF_ERROR(hw::WriteSecretFile(config_.data_dir / "agent_svid.pem", AsBytes(chain_pem), "agent SVID file"));
  }
  SIGIL_ASSIGN_OR_RETURN(auto credentials, CredentialsOf(svid.chain_der, svid.key.get()));
  SIGIL_RETURN_IF_ERROR(client_->SetAgentCredentials(std::move(credentials)));
  std::lock_guard lock(svid_mutex_);
  agent_svid_ = std::make_unique<AgentSvid>(std::move(svid));
  return Status::Ok();
}

Result<AgentSvidAnswer> Agent::AttestWithTpmDevId(const Bytes& csr) {
  // The TPM is opened for attestation only: between attestations it is other programs' too.
  SIGIL_ASSIGN_OR_RETURN(auto tpm, hw::TpmDevIdAgent::Open(*config_.tpm_devid));
  SIGIL_ASSIGN_OR_RETURN(TpmDevIdEvidence evidence, tpm->MakeEvidence());
  auto request = [&](auto build_data) {
    flatbuffers::FlatBufferBuilder builder(4096);
    auto [type, data] = build_data(builder);
    auto csr_vector = builder.CreateVector(csr);
    return wire::FinishMessage(builder, wire::CreateAttestationRequest(builder, type, data, csr_vector));
  };
  SIGIL_ASSIGN_OR_RETURN(AttestAnswer first, client_->Attest(request([&](flatbuffers::FlatBufferBuilder& b) {
    return std::pair{wire::AttestationData::TpmDevIdAttestation, wire::TpmDevIdEvidenceToWire(b, evidence).Union()};
  })));
  auto* challenge = std::get_if<TpmDevIdChallenge>(&first);
  if (challenge == nullptr) return InternalError("serverd answered tpm_devid evidence without a challenge");
  SIGIL_ASSIGN_OR_RETURN(TpmDevIdAnswer answer, tpm->AnswerChallenge(*challenge));
  SIGIL_ASSIGN_OR_RETURN(AttestAnswer second, client_->Attest(request([&](flatbuffers::FlatBufferBuilder& b) {
    return std::pair{wire::AttestationData::TpmDevIdChallengeAnswer, wire::TpmDevIdAnswerToWire(b, answer).Union()};
  })));
  auto* svid = std::get_if<AgentSvidAnswer>(&second);
  if (svid == nullptr) return InternalError("serverd answered a challenge answer with another challenge");
  return std::move(*svid);
}

Status Agent::Attest() {
  std::lock_guard attesting(attest_mutex_);
  if (!config_.tpm_devid && config_.join_token.empty()) {
    return FailedPreconditionError("no saved agent SVID in " + config_.data_dir.string() +
                                   " and nothing to attest with (join_token or -joinToken, or tpm_devid)");
  }
  const std::string type = config_.tpm_devid ? "tpm_devid" : "join_token";
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, hw::GenerateSoftKey(KeyType::kEcP256));
  SIGIL_ASSIGN_OR_RETURN(Bytes csr, MakeCsr(key.get()));
  auto answer = config_.tpm_devid ? AttestWithTpmDevId(csr) : client_->AttestWithJoinToken(config_.join_token, csr);
  if (!answer.ok()) return std::move(answer).status().AddContext(type + " attestation");
  SIGIL_RETURN_IF_ERROR(client_->SetBundle(answer->bundle.x509));
  SIGIL_RETURN_IF_ERROR(SaveBundle(answer->bundle));
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParseChain(answer->chain_der));
  const Clock::time_point not_before = CertNotBefore(chain.front().get());
  const Clock::time_point not_after = CertNotAfter(chain.front().get());
  LogInfo("attested to serverd", {{"agent", answer->agent_id.str()}, {"type", type}});
  return UseAgentSvid(AgentSvid{answer->agent_id, answer->chain_der, std::move(key),
                                not_before + (not_after - not_before) / 2, not_after},
                      true);
}

Status Agent::RenewAgentSvid() {
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, hw::GenerateSoftKey(KeyType::kEcP256));
  SIGIL_ASSIGN_OR_RETURN(Bytes csr, MakeCsr(key.get()));
  SIGIL_ASSIGN_OR_RETURN(AgentSvidAnswer answer, client_->RenewAgentSvid(csr));
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParseChain(answer.chain_der));
  const Clock::time_point not_before = CertNotBefore(chain.front().get());
  const Clock::time_point not_after = CertNotAfter(chain.front().get());
  LogInfo("agent SVID renewed", {{"agent", answer.agent_id.str()}, {"serial", SerialHex(chain.front().get())}});
  return UseAgentSvid(AgentSvid{answer.agent_id, answer.chain_der, std::move(key),
                                not_before + (not_after - not_before) / 2, not_after},
                      true);
}

void Agent::HandleUnauthenticated(const Status& why) {
  LogError("serverd does not know this agent any more (evicted?); attesting again", {{"error", why.ToString()}});
  if (Status attested = Attest(); !attested.ok()) {
    LogError("re-attestation failed; cached SVIDs are served until they expire", {{"error", attested.ToString()}});
  }
}

// ---- loops ----

std::chrono::milliseconds Agent::NextBackoff(std::chrono::milliseconds& backoff) {
  // Full jitter keeps a fleet of agents from retrying in step after a server restart.
  thread_local std::mt19937_64 random(std::random_device{}());
  const auto wait = std::chrono::milliseconds(
      std::uniform_int_distribution<int64_t>(backoff.count() / 2, backoff.count())(random));
  backoff = std::min(backoff * 2, kMaxBackoff);
  return wait;
}

bool Agent::SleepUntil(std::chrono::steady_clock::time_point deadline, uint64_t seen) {
  std::unique_lock lock(mutex_);
  wake_.wait_until(lock, deadline, [&] { return stopping_ || wakeups_ != seen; });
  return !stopping_;
}

uint64_t Agent::Wakeups() {
  std::lock_guard lock(mutex_);
  return wakeups_;
}

void Agent::Wake() {
  {
    std::lock_guard lock(mutex_);
    ++wakeups_;
  }
  wake_.notify_all();
}

void Agent::SyncLoop() {
  int64_t revision = 0;
  auto backoff = kFirstBackoff;
  while (true) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    auto answer = client_->SyncEntries(revision, revision == 0 ? std::chrono::milliseconds(0) : kSyncWait);
    if (!answer.ok()) {
      if (answer.status().code() == Code::kUnauthenticated) {
        HandleUnauthenticated(answer.status());
        revision = 0;
      } else {
        LogWarn("entry sync failed; serving from cache and retrying", {{"error", answer.status().ToString()}});
      }
      if (!SleepUntil(std::chrono::steady_clock::now() + NextBackoff(backoff), Wakeups())) return;
      continue;
    }
    backoff = kFirstBackoff;
    const size_t changed = answer->entries.size();
    const size_t removed = answer->removed_entry_ids.size();
    cache_.ApplyEntries(std::move(answer->entries), answer->removed_entry_ids, answer->revision, answer->full);
    if (cache_.SetBundle(answer->bundle)) {
      if (Status set = client_->SetBundle(answer->bundle.x509); !set.ok()) {
        LogError("serverd sent an unusable trust bundle", {{"error", set.ToString()}});
      }
      if (Status saved = SaveBundle(answer->bundle); !saved.ok()) {
        LogWarn("could not save the trust bundle", {{"error", saved.ToString()}});
      }
    }
    if (changed > 0 || removed > 0 || answer->full) {
      LogDebug("entries synced", {{"revision", std::to_string(answer->revision)}, {"changed", std::to_string(changed)},
                                  {"removed", std::to_string(removed)}, {"full", answer->full ? "true" : "false"}});
    }
    revision = answer->revision;
    synced_once_ = true;
    Wake();
  }
}

void Agent::RotationLoop() {
  auto backoff = kFirstBackoff;
  while (true) {
    // Read before the cache is: a sync landing while this round signs wakes the next sleep.
    const uint64_t wakeups_seen = Wakeups();
    const auto now = Clock::now();
    bool failed = false;

    Clock::time_point agent_renew_at;
    {
      std::lock_guard lock(svid_mutex_);
      agent_renew_at = agent_svid_->renew_at;
    }
    if (now >= agent_renew_at) {
      Status renewed = RenewAgentSvid();
      if (!renewed.ok()) {
        failed = true;
        if (renewed.code() == Code::kUnauthenticated) {
          HandleUnauthenticated(renewed);
        } else {
          LogWarn("agent SVID renewal failed; retrying", {{"error", renewed.ToString()}});
        }
      }
    }

    if (synced_once_) {
      auto due = cache_.EntriesNeedingSvid(now + kRotationLead);
      const auto steady_now = std::chrono::steady_clock::now();
      std::erase_if(due, [&](const auto& entry) {
        auto it = retry_after_.find(entry->id);
        return it != retry_after_.end() && it->second > steady_now;
      });
      if (!due.empty()) {
        const size_t stored = SignEntries(due);
        if (stored < due.size()) failed = true;
      }
      // Ready after the first sync and signing round, even when some entry was refused: one bad
      // entry must not make the whole agent look down.
      ready_ = true;
    }

    auto next = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    auto at = [&](Clock::time_point when) {
      return std::chrono::steady_clock::now() +
             std::chrono::duration_cast<std::chrono::steady_clock::duration>(when - Clock::now());
    };
    if (auto rotation = cache_.NextRotation()) next = std::min(next, at(*rotation - kRotationLead));
    {
      std::lock_guard lock(svid_mutex_);
      next = std::min(next, at(agent_svid_->renew_at));
    }
    for (const auto& [id, when] : retry_after_) next = std::min(next, when);
    if (failed) {
      next = std::min(next, std::chrono::steady_clock::now() + NextBackoff(backoff));
    } else {
      backoff = kFirstBackoff;
    }
    if (!SleepUntil(next, wakeups_seen)) return;
  }
}

size_t Agent::SignEntries(const std::vector<std::shared_ptr<const RegistrationEntry>>& due) {
  std::vector<std::span<const std::shared_ptr<const RegistrationEntry>>> batches;
  for (size_t i = 0; i < due.size(); i += kCsrBatchSize) {
    batches.push_back(std::span(due).subspan(i, std::min(kCsrBatchSize, due.size() - i)));
  }
  std::atomic<size_t> next_batch{0};
  std::atomic<size_t> stored{0};
  std::mutex failures_mutex;
  std::vector<std::pair<std::string, Status>> failures;
  Status batch_failure;

  auto worker = [&] {
    while (true) {
      const size_t index = next_batch.fetch_add(1);
      if (index >= batches.size()) return;
      const auto& batch = batches[index];
      // What lives in the cache is allocated afresh once the answers are in, and everything
      // else a batch holds is freed together at its end, so the batch's short-lived memory is
      // one run the next batch reuses rather than holes among the cached SVIDs. Each key is
      // kept as PKCS#8 DER from the moment its CSR is made for the same reason: a key object's
      // many small allocations are freed before the next key's, and reuse one another's.
      // Only entries whose key and CSR were made are sent; `asked[i]` is the entry of item i.
      std::vector<CsrRequestItem> items;
      std::vector<Bytes> keys;
      std::vector<const std::shared_ptr<const RegistrationEntry>*> asked;
      for (const auto& entry : batch) {
        auto key = hw::GenerateSoftKey(config_.workload_key_type);
        auto csr = key.ok() ? MakeCsr(key->get()) : Result<Bytes>(key.status());
        auto key_der = csr.ok() ? PrivateKeyToPkcs8Der(key->get()) : Result<Bytes>(csr.status());
        if (!key_der.ok()) {
          std::lock_guard lock(failures_mutex);
          failures.emplace_back(entry->id, key_der.status());
          continue;
        }
        keys.push_back(std::move(*key_der));
        items.push_back({entry->id, std::move(*csr)});
        asked.push_back(&entry);
      }
      if (items.empty()) continue;
      auto answers = client_->SignCsrBatch(items);
      if (!answers.ok()) {
        std::lock_guard lock(failures_mutex);
        batch_failure = answers.status();
        for (const auto* entry : asked) failures.emplace_back((*entry)->id, answers.status());
        continue;
      }
      std::vector<std::shared_ptr<const WorkloadX509Svid>> signed_svids;
      for (size_t i = 0; i < asked.size(); ++i) {
        const CsrAnswer& answer = (*answers)[i];
        const RegistrationEntry& entry = **asked[i];
        if (!answer.status.ok()) {
          std::lock_guard lock(failures_mutex);
          failures.emplace_back(entry.id, answer.status);
          continue;
        }
        auto validity = answer.validity && !answer.chain_der.empty() ? *answer.validity : LeafValidity(answer.chain_der);
        if (!validity.ok()) {
          std::lock_guard lock(failures_mutex);
          failures.emplace_back(entry.id, validity.status());
          continue;
        }
        auto svid = std::make_shared<WorkloadX509Svid>();
        svid->issued_for = *asked[i];
        svid->chain_der = Concatenated(answer.chain_der);
        svid->key_pkcs8_der = keys[i];
        svid->not_before = validity->first;
        svid->not_after = validity->second;
        signed_svids.push_back(std::move(svid));
      }
      stored.fetch_add(signed_svids.size());
      cache_.StoreSvids(std::move(signed_svids));
    }
  };
  const int threads = static_cast<int>(std::min<size_t>(batches.size(), kBatchesInFlight));
  std::vector<std::thread> workers;
  for (int i = 1; i < threads; ++i) workers.emplace_back(worker);
  worker();
  for (auto& thread : workers) thread.join();

  const auto now = std::chrono::steady_clock::now();
  for (const auto& entry : due) retry_after_.erase(entry->id);
  for (const auto& [id, status] : failures) {
    // One refused entry waits on its own; the others go on.
    const auto wait = status.code() == Code::kResourceExhausted ? std::chrono::milliseconds(200) : std::chrono::seconds(5);
    retry_after_[id] = now + wait;
    if (status.code() != Code::kResourceExhausted && status.code() != Code::kUnavailable) {
      LogWarn("serverd refused an SVID", {{"entry_id", id}, {"error", status.ToString()}});
    }
  }
  if (!batch_failure.ok()) {
    if (batch_failure.code() == Code::kUnauthenticated) HandleUnauthenticated(batch_failure);
    else LogWarn("signing SVIDs failed; serving from cache and retrying", {{"error", batch_failure.ToString()}});
  }
  if (stored > 0) LogDebug("SVIDs signed", {{"count", std::to_string(stored.load())}});
  return stored.load();
}

}  // namespace sigil::agentd
