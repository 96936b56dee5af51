#include "agentd/workload/workload_api.h"

#include <google/protobuf/util/json_util.h>
#include <uv.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "core/base64url.h"
#include "core/jwt_svid.h"
#include "core/log.h"
#include "core/openssl_util.h"
#include "agentd/workload/health.pb.h"
#include "agentd/workload/messages.h"
#include "agentd/workload/workload.pb.h"

namespace sigil::agentd {

namespace {

using transport::GrpcServerCall;

constexpr char kFetchX509Svid[] = "/SpiffeWorkloadAPI/FetchX509SVID";
constexpr char kFetchX509Bundles[] = "/SpiffeWorkloadAPI/FetchX509Bundles";
constexpr char kFetchJwtSvid[] = "/SpiffeWorkloadAPI/FetchJWTSVID";
constexpr char kFetchJwtBundles[] = "/SpiffeWorkloadAPI/FetchJWTBundles";
constexpr char kValidateJwtSvid[] = "/SpiffeWorkloadAPI/ValidateJWTSVID";
constexpr char kHealthCheck[] = "/grpc.health.v1.Health/Check";

constexpr size_t kMaxBuiltMessages = 4096;
constexpr size_t kMaxBuiltMessageBytes = 64 * 1024;

}  // namespace

WorkloadApiServer::WorkloadApiServer(transport::EventLoop* loop, SvidCache* cache,
                                     WorkloadApiOptions options)
    : loop_(loop), cache_(cache), options_(std::move(options)) {
  RegisterMethods();
}

WorkloadApiServer::~WorkloadApiServer() { Stop(); }

Status WorkloadApiServer::Start() {
  attestors_.clear();
  for (const std::string& name : options_.workload_attestors) {
    auto attestor = MakeWorkloadAttestor(name);
    if (!attestor.ok()) return std::move(attestor).status().AddContext("while starting the Workload API");
    attestors_.push_back(std::move(*attestor));
  }
  if (attestors_.empty()) return InvalidArgumentError("the Workload API needs at least one workload attestor");
  caller_check_ = new uv_check_t;
  uv_check_init(loop_->uv(), caller_check_);
  caller_check_->data = this;
  server_ =
      std::make_unique<transport::Http2Server>(loop_, options_.http2, router_.AsHttp2Handler());
  Status listening = server_->ListenUnix(
      transport::UnixListenerOptions{.path = options_.socket_path, .file_mode = 0777, .vouch_for_peers = true});
  if (!listening.ok()) {
    server_.reset();
    return listening.AddContext("while opening the Workload API socket");
  }
  auto liveness = liveness_;
  auto* loop = loop_;
  subscription_ = cache_->Subscribe([this, liveness, loop] {
    // Many changes in a row cost one re-evaluation of the streams.
    if (liveness->refresh_posted.exchange(true)) return;
    loop->Post([this, liveness] {
      liveness->refresh_posted = false;
      if (liveness->alive) RefreshStreams();
    });
  });
  // A graceful loop stop waits for open streams, and these never end on their own.
  stop_hook_ =
      loop_->AddStopHook([this](bool) { EndStreams(UnavailableError("agent is stopping")); });
  LogInfo("Workload API listening", {{"socket", options_.socket_path}});
  return Status::Ok();
}

void WorkloadApiServer::Stop() {
  liveness_->alive = false;
  if (subscription_ != 0) {
    cache_->Unsubscribe(subscription_);
    subscription_ = 0;
  }
  if (stop_hook_ != 0) {
    loop_->RemoveStopHook(stop_hook_);
    stop_hook_ = 0;
  }
  EndStreams(UnavailableError("agent is stopping"));
  awaiting_caller_check_.clear();
  if (caller_check_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(caller_check_),
             [](uv_handle_t* handle) { delete reinterpret_cast<uv_check_t*>(handle); });
    caller_check_ = nullptr;
  }
  server_.reset();
  refused_callers_.Flush();
}

void WorkloadApiServer::RegisterMethods() {
  // Every method but Health/Check first finds out who is calling.
  auto authenticated = [this](std::string method,
                              std::function<void(std::shared_ptr<GrpcServerCall>,
                                                 const std::string&, const SelectorSet&)>
                                  handler) {
    return [this, method, handler](std::shared_ptr<GrpcServerCall> call, std::string request) {
      Authenticate(call, [this, method, handler, call,
                          request = std::move(request)](Result<SelectorSet> selectors) {
        if (!selectors.ok()) return Finish(*call, method, selectors.status());
        handler(call, request, *selectors);
      });
    };
  };
  auto stream = [this](StreamKind kind, std::string method) {
    return [this, kind, method](std::shared_ptr<GrpcServerCall> call, const std::string&,
                                const SelectorSet& selectors) {
      OpenStreamFor(kind, method, std::move(call), selectors);
    };
  };
  router_.RegisterServerStreaming(
      kFetchX509Svid, authenticated(kFetchX509Svid, stream(StreamKind::kX509Svid, kFetchX509Svid)));
  router_.RegisterServerStreaming(
      kFetchX509Bundles,
      authenticated(kFetchX509Bundles, stream(StreamKind::kX509Bundles, kFetchX509Bundles)));
  router_.RegisterServerStreaming(
      kFetchJwtBundles,
      authenticated(kFetchJwtBundles, stream(StreamKind::kJwtBundles, kFetchJwtBundles)));
  router_.RegisterUnary(
      kFetchJwtSvid,
      authenticated(kFetchJwtSvid, [this](auto call, const auto& request, const auto& selectors) {
        FetchJwtSvid(std::move(call), request, selectors);
      }));
  router_.RegisterUnary(kValidateJwtSvid,
                        authenticated(kValidateJwtSvid, [this](auto call, const auto& request,
                                                               const auto& selectors) {
                          ValidateJwtSvid(std::move(call), request, selectors);
                        }));
  router_.RegisterUnary(kHealthCheck, [this](auto call, std::string request) {
    HealthCheck(std::move(call), std::move(request));
  });
}

void WorkloadApiServer::Finish(GrpcServerCall& call, const std::string& method, Status status) {
  metrics_.CallEnded(call, method, status.code());
  if (status.ok() && method == kFetchJwtSvid) metrics_.FirstAnswer(call, method);
  // A stream the client cancels (a fetch that took its first message) is the normal end.
  if (!status.ok() && status.code() != Code::kPermissionDenied && status.code() != Code::kCancelled) {
    LogDebug("Workload API call failed", {{"method", method}, {"error", status.ToString()}});
  }
  call.Finish(std::move(status));
}

namespace {

using Attestors = std::vector<std::shared_ptr<WorkloadAttestor>>;

// Every attestor's selectors together; the first that cannot attest the caller refuses it.
// `attest` asks one attestor: nullopt when it cannot answer that way.
template <typename Ask>
std::optional<Result<std::vector<Selector>>> AttestWithEach(const Attestors& attestors, Ask attest) {
  std::vector<Selector> all;
  for (const auto& attestor : attestors) {
    std::optional<Result<std::vector<Selector>>> selectors = attest(*attestor);
    if (!selectors || !selectors->ok()) return selectors;
    if (all.empty()) {
      all = std::move(**selectors);
    } else {
      all.insert(all.end(), (*selectors)->begin(), (*selectors)->end());
    }
  }
  return Result<std::vector<Selector>>(std::move(all));
}

struct Attestation {
  uv_work_t request;
  Attestors attestors;
  transport::PeerCredentials credentials;
  Result<std::vector<Selector>> selectors = InternalError("the caller was not attested");
  std::function<void(Result<std::vector<Selector>>)> done;  // on the loop
};

}  // namespace

void WorkloadApiServer::Authenticate(std::shared_ptr<GrpcServerCall> call,
                                     std::function<void(Result<SelectorSet>)> next) {
  if (call->Metadata(kWorkloadSecurityHeader) != "true") {
    return next(InvalidArgumentError("security header missing from request"));
  }
  const auto& credentials = call->peer().credentials;
  if (!credentials) return next(PermissionDeniedError("the caller's credentials are unknown"));
  if (!credentials->process) return Attest(std::move(call), std::nullopt, std::move(next));
  // The process that connected, still running what it ran then, and the only writer: else
  // the call is another process's, relayed (transport/peer_process.h). Checked once the loop
  // has read what is ready this turn: the calls of one process then share one stat.
  awaiting_caller_check_.push_back({std::move(call), std::move(next)});
  if (awaiting_caller_check_.size() == 1) uv_check_start(caller_check_, [](uv_check_t* handle) {
    static_cast<WorkloadApiServer*>(handle->data)->CheckCallers();
  });
}

void WorkloadApiServer::CheckCallers() {
  uv_check_stop(caller_check_);
  std::vector<AwaitingCallerCheck> calls;
  calls.swap(awaiting_caller_check_);
  std::vector<const transport::PeerProcess*> holds;
  holds.reserve(calls.size());
  for (const auto& awaiting : calls) holds.push_back(awaiting.call->peer().credentials->process.get());
  std::vector<transport::PeerProcess::CallerCheck> checks = transport::PeerProcess::StillTheCallers(holds);
  for (size_t i = 0; i < calls.size(); ++i) {
    auto& [call, next] = calls[i];
    if (call->cancelled() || call->finished()) continue;
    if (!checks[i].status.ok()) {
      const auto& credentials = *call->peer().credentials;
      refused_callers_.Failed("uid:" + std::to_string(credentials.uid), {{"pid", std::to_string(credentials.pid)},
                                                                        {"uid", std::to_string(credentials.uid)},
                                                                        {"why", checks[i].status.message()}});
      next(std::move(checks[i].status));
      continue;
    }
    Attest(std::move(call), checks[i].binary_now, std::move(next));
  }
}

void WorkloadApiServer::Attest(std::shared_ptr<GrpcServerCall> call,
                               const std::optional<transport::PeerProcess::ExecutableKey>& binary_now,
                               std::function<void(Result<SelectorSet>)> next) {
  const auto& credentials = call->peer().credentials;
  auto done = [call, next = std::move(next), liveness = liveness_](Result<std::vector<Selector>> selectors) {
    if (!liveness->alive || call->cancelled() || call->finished()) return;
    if (!selectors.ok()) {
      return next(
          PermissionDeniedError("could not attest the caller: " + selectors.status().message()));
    }
    next(SelectorSet(std::move(*selectors)));
  };
  // A caller the attestors know (the unix attestor: a binary hashed before) costs a few reads
  // of /proc: cheaper here than a trip to the thread pool and back, which only reading and
  // hashing a new binary is worth.
  if (auto attested = AttestWithEach(attestors_, [&](WorkloadAttestor& attestor) {
        return attestor.AttestWithoutBlocking(*credentials, binary_now);
      })) {
    return done(std::move(*attested));
  }
  auto* attestation = new Attestation{.attestors = attestors_, .credentials = *credentials};
  attestation->request.data = attestation;
  attestation->done = std::move(done);
  const int queued = uv_queue_work(
      loop_->uv(), &attestation->request,
      [](uv_work_t* request) {
        auto* work = static_cast<Attestation*>(request->data);
        work->selectors = *AttestWithEach(work->attestors, [&](WorkloadAttestor& attestor) {
          return std::optional(attestor.Attest(work->credentials));
        });
      },
      [](uv_work_t* request, int) {
        std::unique_ptr<Attestation> work(static_cast<Attestation*>(request->data));
        work->done(std::move(work->selectors));
      });
  if (queued != 0) {
    std::unique_ptr<Attestation> work(attestation);
    work->done(
        UnavailableError(std::string("cannot queue the attestation: ") + uv_strerror(queued)));
  }
}

void WorkloadApiServer::OpenStreamFor(StreamKind kind, const std::string& method,
                                      std::shared_ptr<GrpcServerCall> call, SelectorSet selectors) {
  const uint64_t id = next_stream_++;
  OpenStream& stream = streams_[id];
  stream.kind = kind;
  stream.call = call;
  stream.selectors = std::move(selectors);
  call->OnCancel([this, id, liveness = liveness_, method] {
    if (!liveness->alive) return;
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    Finish(*it->second.call, method, CancelledError("the client went away"));
    streams_.erase(it);
  });
  if (!Advance(stream, *cache_->snapshot())) streams_.erase(id);
}

std::shared_ptr<const WorkloadApiServer::BuiltMessage> WorkloadApiServer::MessageFor(
    StreamKind kind, const SelectorSet& selectors, const SvidCache::Snapshot& snapshot) {
  // Versions only grow; a stream advancing on an older snapshot than the cache's builds alone.
  if (snapshot.version > built_version_) {
    for (auto& of_kind : built_) of_kind.clear();
    built_version_ = snapshot.version;
  }
  const bool cacheable = snapshot.version == built_version_;
  auto& of_kind = built_.at(static_cast<size_t>(kind));
  if (cacheable) {
    if (auto it = of_kind.find(selectors.items()); it != of_kind.end()) return it->second;
  }
  auto built = std::make_shared<BuiltMessage>();
  switch (kind) {
    case StreamKind::kX509Svid:
      built->message = X509SvidResponseFor(snapshot, selectors);
      break;
    case StreamKind::kX509Bundles:
      built->message = X509BundlesResponseFor(snapshot, selectors);
      break;
    case StreamKind::kJwtBundles:
      built->message = JwtBundlesResponseFor(snapshot, selectors);
      break;
  }
  if (built->message.ok() && built->message->has_value()) built->digest = Sha256(AsBytes((*built->message)->payload()));
  // Selectors carry no pid, so this stays as small as the number of distinct workloads;
  // bounded all the same. A message of hundreds of SVIDs is built per call instead: keeping it
  // would hold a second copy of that workload's whole cache.
  size_t built_count = 0;
  for (const auto& kept : built_) built_count += kept.size();
  if (cacheable && built_count < kMaxBuiltMessages && built->message.ok() &&
      (!built->message->has_value() || (*built->message)->payload().size() <= kMaxBuiltMessageBytes)) {
    of_kind.emplace(selectors.items(), built);
  }
  return built;
}

bool WorkloadApiServer::Advance(OpenStream& stream, const SvidCache::Snapshot& snapshot) {
  const char* method = stream.kind == StreamKind::kX509Svid      ? kFetchX509Svid
                       : stream.kind == StreamKind::kX509Bundles ? kFetchX509Bundles
                                                                 : kFetchJwtBundles;
  const auto built = MessageFor(stream.kind, stream.selectors, snapshot);
  if (!built->message.ok()) {
    Finish(*stream.call, method, built->message.status());
    return false;
  }
  if (built->message->has_value() && built->digest != stream.last_sent_digest) {
    if (stream.last_sent_digest.empty()) metrics_.FirstAnswer(*stream.call, method);
    stream.last_sent_digest = built->digest;
    stream.call->WriteFrame((*built->message)->frame());
  }
  return true;
}

void WorkloadApiServer::RefreshStreams() {
  auto snapshot = cache_->snapshot();
  for (auto it = streams_.begin(); it != streams_.end();) {
    if (it->second.call->cancelled() || !Advance(it->second, *snapshot)) {
      it = streams_.erase(it);
    } else {
      ++it;
    }
  }
}

void WorkloadApiServer::EndStreams(const Status& why) {
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, stream] : streams) {
    if (!stream.call->finished()) stream.call->Finish(why);
  }
}

void WorkloadApiServer::FetchJwtSvid(std::shared_ptr<GrpcServerCall> call,
                                     const std::string& request_bytes,
                                     const SelectorSet& selectors) {
  JWTSVIDRequest request;
  if (!request.ParseFromString(request_bytes)) {
    return Finish(*call, kFetchJwtSvid, InvalidArgumentError("malformed JWTSVIDRequest"));
  }
  std::vector<std::string> audience(request.audience().begin(), request.audience().end());
  std::erase(audience, std::string());
  if (audience.empty())
    return Finish(*call, kFetchJwtSvid, InvalidArgumentError("audience must be specified"));
  // Before the cache or serverd sees them: what a caller may name must not decide how much
  // the agent holds or asks to have signed.
  if (Status bounded = CheckJwtAudiences(audience); !bounded.ok()) return Finish(*call, kFetchJwtSvid, bounded);
  if (!request.spiffe_id().empty()) {
    if (auto id = SpiffeId::Parse(request.spiffe_id()); !id.ok()) {
      return Finish(*call, kFetchJwtSvid,
                    InvalidArgumentError("invalid requested SPIFFE ID: " + id.status().message()));
    }
  }

  // One JWT-SVID per identity; two entries naming the same SPIFFE ID share it.
  std::vector<RegistrationEntry> identities;
  std::set<std::string> seen;
  for (auto& entry : cache_->EntriesFor(selectors)) {
    if (!request.spiffe_id().empty() && entry.spiffe_id != request.spiffe_id()) continue;
    if (seen.insert(entry.spiffe_id).second) identities.push_back(std::move(entry));
  }
  if (identities.empty()) return Finish(*call, kFetchJwtSvid, NoIdentity());

  struct Pending {
    std::vector<std::optional<WorkloadJwtSvid>> svids;
    std::vector<std::string> hints;
    size_t outstanding = 0;
    bool failed = false;
  };
  auto pending = std::make_shared<Pending>();
  pending->svids.resize(identities.size());
  const auto now = Clock::now();
  for (size_t i = 0; i < identities.size(); ++i) {
    pending->hints.push_back(identities[i].hint);
    pending->svids[i] = cache_->FindJwt(identities[i].spiffe_id, audience, now);
    if (!pending->svids[i]) ++pending->outstanding;
  }

  auto respond = [this, call, pending] {
    std::vector<JwtSvidItem> items;
    for (size_t i = 0; i < pending->svids.size(); ++i) {
      items.push_back({pending->svids[i]->spiffe_id, pending->svids[i]->token, pending->hints[i]});
    }
    call->Write(JwtSvidResponse(items));
    Finish(*call, kFetchJwtSvid, Status::Ok());
  };
  if (pending->outstanding == 0) return respond();
  if (!options_.mint_jwt) {
    return Finish(*call, kFetchJwtSvid,
                  UnavailableError("no JWT-SVID cached and no signer to ask"));
  }
  for (size_t i = 0; i < identities.size(); ++i) {
    if (pending->svids[i]) continue;
    auto on_loop = [this, call, pending, respond, i, audience,
                    liveness = liveness_](Result<WorkloadJwtSvid> minted) {
      if (!liveness->alive || pending->failed || call->finished()) return;
      if (!minted.ok()) {
        pending->failed = true;
        Status why = minted.status();
        return Finish(*call, kFetchJwtSvid, why.AddContext("while minting a JWT-SVID"));
      }
      cache_->StoreJwt(*minted, audience);
      pending->svids[i] = std::move(*minted);
      if (--pending->outstanding == 0) respond();
    };
    options_.mint_jwt(
        identities[i], audience,
        [loop = loop_, on_loop = std::move(on_loop)](Result<WorkloadJwtSvid> minted) mutable {
          loop->Post([on_loop = std::move(on_loop), minted = std::move(minted)]() mutable {
            on_loop(std::move(minted));
          });
        });
  }
}

void WorkloadApiServer::ValidateJwtSvid(std::shared_ptr<GrpcServerCall> call,
                                        const std::string& request_bytes,
                                        const SelectorSet& selectors) {
  ValidateJWTSVIDRequest request;
  if (!request.ParseFromString(request_bytes)) {
    return Finish(*call, kValidateJwtSvid,
                  InvalidArgumentError("malformed ValidateJWTSVIDRequest"));
  }
  if (request.audience().empty())
    return Finish(*call, kValidateJwtSvid, InvalidArgumentError("audience must be specified"));
  if (request.svid().empty())
    return Finish(*call, kValidateJwtSvid, InvalidArgumentError("svid must be specified"));

  auto snapshot = cache_->snapshot();
  if (snapshot->bundle == nullptr) {
    return Finish(*call, kValidateJwtSvid, UnavailableError("the trust bundle is not known yet"));
  }
  // The subject names the trust domain whose keys must have signed the token.
  const TrustBundle* bundle = snapshot->bundle.get();
  // The claims are read with nlohmann-json and reach the response through protobuf's JSON
  // parser: protobuf's inline map code (google.protobuf.Struct) does not match Debian's
  // prebuilt library under ThreadSanitizer, and the library's own code path works everywhere.
  nlohmann::json claims = nlohmann::json::object();
  if (request.svid().size() <= kMaxJwtSvidLength) {
    // Unverified: only to find the subject's trust domain (and so the bundle) before validating.
    auto json = UnverifiedJwtClaims(request.svid());
    auto parsed = json.ok() ? nlohmann::json::parse(*json, nullptr, false) : nlohmann::json();
    if (parsed.is_object()) {
      claims = std::move(parsed);
      if (claims.contains("sub") && claims["sub"].is_string()) {
        if (auto id = SpiffeId::Parse(claims["sub"].get<std::string>());
            id.ok() && !id->MemberOf(bundle->trust_domain())) {
          CallerView view = ViewOf(*snapshot, selectors);
          auto it = view.federated.find(id->trust_domain().IdString());
          if (it == view.federated.end()) {
            return Finish(*call, kValidateJwtSvid,
                          InvalidArgumentError("no keys found for trust domain \"" +
                                               id->trust_domain().name() + "\""));
          }
          bundle = it->second.get();
        }
      }
    }
  }
  auto validated = sigil::ValidateJwtSvid(request.svid(), bundle->jwt, request.audience());
  if (!validated.ok())
    return Finish(*call, kValidateJwtSvid, InvalidArgumentError(validated.status().message()));

  // Only protobuf's library touches the Struct: it is made by the library (New), filled by its
  // JSON parser and serialized by its own code; the response's two fields are written here.
  std::unique_ptr<google::protobuf::Message> claims_message(google::protobuf::Struct::default_instance().New());
  if (!google::protobuf::util::JsonStringToMessage(claims.dump(), claims_message.get()).ok()) {
    return Finish(*call, kValidateJwtSvid, InternalError("the token's claims do not convert to a Struct"));
  }
  call->Write(ValidateJwtSvidResponse(validated->spiffe_id.str(), claims_message->SerializeAsString()));
  Finish(*call, kValidateJwtSvid, Status::Ok());
}

void WorkloadApiServer::HealthCheck(std::shared_ptr<GrpcServerCall> call,
                                    std::string request_bytes) {
  grpc::health::v1::HealthCheckRequest request;
  if (!request.ParseFromString(request_bytes)) {
    return Finish(*call, kHealthCheck, InvalidArgumentError("malformed HealthCheckRequest"));
  }
  // "" asks after the whole agent; the only service here is the Workload API.
  if (!request.service().empty() && request.service() != "SpiffeWorkloadAPI") {
    return Finish(*call, kHealthCheck, NotFoundError("unknown service " + request.service()));
  }
  grpc::health::v1::HealthCheckResponse response;
  const bool ready = !options_.ready || options_.ready();
  response.set_status(ready ? grpc::health::v1::HealthCheckResponse::SERVING
                            : grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  call->Write(response.SerializeAsString());
  Finish(*call, kHealthCheck, Status::Ok());
}

}  // namespace sigil::agentd
