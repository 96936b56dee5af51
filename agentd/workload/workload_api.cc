#include "agentd/workload/workload_api.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/wire_format_lite.h>
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

Status NoIdentity() { return PermissionDeniedError("no identity issued"); }

constexpr size_t kMaxBuiltMessages = 4096;
constexpr size_t kMaxBuiltMessageBytes = 64 * 1024;

// Protobuf leaves map order to chance; streams compare what they sent byte for byte.
std::string SerializeDeterministic(const google::protobuf::Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

std::string ConcatenatedDer(const X509Bundle& bundle) {
  std::string out;
  for (const auto& cert : bundle.authorities) {
    auto der = CertToDer(cert.get());
    if (der.ok()) out.append(der->begin(), der->end());
  }
  return out;
}

std::string AsString(const Bytes& bytes) { return std::string(bytes.begin(), bytes.end()); }

// What one caller may see in one snapshot.
struct CallerView {
  std::vector<const RegistrationEntry*> entries;  // ordered by SPIFFE ID, then entry id
  std::vector<std::shared_ptr<const WorkloadX509Svid>> svids;  // same order
  // Federated bundles the caller's entries federate with, by trust domain ID.
  std::map<std::string, std::shared_ptr<const TrustBundle>> federated;
};

CallerView ViewOf(const SvidCache::Snapshot& snapshot, const SelectorSet& selectors) {
  CallerView view;
  std::vector<const SvidCache::CachedEntry*> matched;
  for (const auto& [id, cached] : *snapshot.entries) {
    if (EntryMatchesWorkload(cached.entry->selector_set(), selectors)) matched.push_back(&cached);
  }
  std::sort(matched.begin(), matched.end(), [](const auto* a, const auto* b) {
    return std::tie(a->entry->spiffe_id, a->entry->id) < std::tie(b->entry->spiffe_id, b->entry->id);
  });
  for (const auto* cached : matched) {
    const RegistrationEntry* entry = cached->entry.get();
    view.entries.push_back(entry);
    if (cached->svid) view.svids.push_back(cached->svid);
    for (const auto& federated : entry->federates_with) {
      auto td = TrustDomain::Parse(federated);
      if (!td.ok()) continue;
      auto it = snapshot.federated_bundles.find(td->name());
      if (it != snapshot.federated_bundles.end()) view.federated[td->IdString()] = it->second;
    }
  }
  return view;
}

// The message a stream should carry now; nullopt while there is nothing to send yet.
Result<std::optional<std::string>> X509SvidMessage(const SvidCache::Snapshot& snapshot,
                                                   const SelectorSet& selectors) {
  CallerView view = ViewOf(snapshot, selectors);
  if (view.entries.empty()) return NoIdentity();
  // Entries without SVIDs yet (or no bundle yet): the sync is on its way, so wait for it
  // rather than tell a legitimate workload it has no identity.
  if (view.svids.empty() || snapshot.bundle == nullptr) return std::optional<std::string>();
  // The repeated svids field is written one element at a time through a single X509SVID,
  // rather than as a response holding a copy of every SVID: for a workload of a thousand
  // SVIDs that copy was thousands of small allocations per change, and the holes they left
  // among the cache's own kept the agent's memory at twice the cache's size.
  const std::string bundle = ConcatenatedDer(snapshot.bundle->x509);
  size_t estimated_size = 0;
  for (const auto& svid : view.svids) {
    estimated_size += svid->spiffe_id().size() + svid->chain_der.size() + svid->key_pkcs8_der.size() +
                      bundle.size() + svid->hint().size() + 32;
  }
  std::string out;
  out.reserve(estimated_size);
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    X509SVID element;
    std::set<std::string> hints;
    for (const auto& svid : view.svids) {
      element.set_spiffe_id(svid->spiffe_id());
      element.mutable_x509_svid()->assign(svid->chain_der.begin(), svid->chain_der.end());
      element.mutable_x509_svid_key()->assign(svid->key_pkcs8_der.begin(), svid->key_pkcs8_der.end());
      element.set_bundle(bundle);
      // The standard wants hints unique within a response; a repeated one is dropped.
      if (!svid->hint().empty() && hints.insert(svid->hint()).second) {
        element.set_hint(svid->hint());
      } else {
        element.clear_hint();
      }
      coded.WriteTag(google::protobuf::internal::WireFormatLite::MakeTag(
          X509SVIDResponse::kSvidsFieldNumber, google::protobuf::internal::WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
      coded.WriteVarint32(static_cast<uint32_t>(element.ByteSizeLong()));
      element.SerializeWithCachedSizes(&coded);
    }
    // The fields after svids, in field order as protobuf writes them.
    X509SVIDResponse rest;
    for (const auto& [td_id, federated] : view.federated) {
      (*rest.mutable_federated_bundles())[td_id] = ConcatenatedDer(federated->x509);
    }
    rest.SerializeToCodedStream(&coded);
  }
  return std::optional<std::string>(std::move(out));
}

Result<std::optional<std::string>> X509BundlesMessage(const SvidCache::Snapshot& snapshot,
                                                      const SelectorSet& selectors) {
  CallerView view = ViewOf(snapshot, selectors);
  if (view.entries.empty()) return NoIdentity();
  if (snapshot.bundle == nullptr) return std::optional<std::string>();
  X509BundlesResponse response;
  (*response.mutable_bundles())[snapshot.bundle->trust_domain().IdString()] =
      ConcatenatedDer(snapshot.bundle->x509);
  for (const auto& [td_id, federated] : view.federated) {
    (*response.mutable_bundles())[td_id] = ConcatenatedDer(federated->x509);
  }
  return std::optional<std::string>(SerializeDeterministic(response));
}

// The JWT authorities alone: the standard forbids keys of other uses in JWT bundles.
Result<std::string> JwtJwks(const TrustBundle& bundle) {
  TrustBundle jwt_only(bundle.trust_domain());
  jwt_only.jwt = bundle.jwt;
  return TrustBundleToJwks(jwt_only);
}

Result<std::optional<std::string>> JwtBundlesMessage(const SvidCache::Snapshot& snapshot,
                                                     const SelectorSet& selectors) {
  CallerView view = ViewOf(snapshot, selectors);
  if (view.entries.empty()) return NoIdentity();
  if (snapshot.bundle == nullptr) return std::optional<std::string>();
  JWTBundlesResponse response;
  SIGIL_ASSIGN_OR_RETURN(std::string own, JwtJwks(*snapshot.bundle));
  (*response.mutable_bundles())[snapshot.bundle->trust_domain().IdString()] = own;
  for (const auto& [td_id, federated] : view.federated) {
    SIGIL_ASSIGN_OR_RETURN(std::string jwks, JwtJwks(*federated));
    (*response.mutable_bundles())[td_id] = jwks;
  }
  return std::optional<std::string>(SerializeDeterministic(response));
}

// The claims of a token as JSON, without checking anything: only to find the subject's trust
// domain (and so the bundle) before the real validation.
Result<std::string> UnverifiedClaimsJson(std::string_view token) {
  const size_t first = token.find('.');
  const size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos)
    return InvalidArgumentError("token is not a JWS compact serialization");
  SIGIL_ASSIGN_OR_RETURN(Bytes payload,
                         Base64UrlDecode(token.substr(first + 1, second - first - 1)));
  return AsString(payload);
}

}  // namespace

WorkloadApiServer::WorkloadApiServer(transport::EventLoop* loop, SvidCache* cache,
                                     WorkloadApiOptions options)
    : loop_(loop), cache_(cache), options_(std::move(options)) {
  RegisterMethods();
}

WorkloadApiServer::~WorkloadApiServer() { Stop(); }

Status WorkloadApiServer::Start() {
  server_ =
      std::make_unique<transport::Http2Server>(loop_, options_.http2, router_.AsHttp2Handler());
  Status listening = server_->ListenUnix(
      transport::UnixListenerOptions{.path = options_.socket_path, .file_mode = 0777});
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
  server_.reset();
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
  if (options_.metrics != nullptr) {
    options_.metrics
        ->GetCounter("workload_api_calls_total", "Workload API calls by method and result",
                     {{"method", method.substr(method.rfind('/') + 1)},
                      {"code", std::string(CodeName(status.code()))}})
        .Add();
  }
  if (!status.ok() && status.code() != Code::kPermissionDenied) {
    LogDebug("Workload API call failed", {{"method", method}, {"error", status.ToString()}});
  }
  call.Finish(std::move(status));
}

namespace {

struct Attestation {
  uv_work_t request;
  std::shared_ptr<UnixWorkloadAttestor> attestor;
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
  auto done = [call, next = std::move(next), liveness = liveness_](Result<std::vector<Selector>> selectors) {
    if (!liveness->alive || call->cancelled() || call->finished()) return;
    if (!selectors.ok()) {
      return next(
          PermissionDeniedError("could not attest the caller: " + selectors.status().message()));
    }
    next(SelectorSet(std::move(*selectors)));
  };
  // A known binary costs a few reads of /proc: cheaper here than a trip to the thread pool
  // and back, which only reading and hashing a new binary is worth.
  if (auto attested = attestor_->AttestIfHashed(credentials->pid, credentials->uid, credentials->gid,
                                                credentials->supplementary_groups)) {
    return done(std::move(*attested));
  }
  auto* attestation = new Attestation{.attestor = attestor_, .credentials = *credentials};
  attestation->request.data = attestation;
  attestation->done = std::move(done);
  const int queued = uv_queue_work(
      loop_->uv(), &attestation->request,
      [](uv_work_t* request) {
        auto* work = static_cast<Attestation*>(request->data);
        work->selectors = work->attestor->Attest(work->credentials.pid, work->credentials.uid,
                                                 work->credentials.gid, work->credentials.supplementary_groups);
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
      built->message = X509SvidMessage(snapshot, selectors);
      break;
    case StreamKind::kX509Bundles:
      built->message = X509BundlesMessage(snapshot, selectors);
      break;
    case StreamKind::kJwtBundles:
      built->message = JwtBundlesMessage(snapshot, selectors);
      break;
  }
  if (built->message.ok() && built->message->has_value()) built->digest = Sha256(AsBytes(**built->message));
  // Selectors carry no pid, so this stays as small as the number of distinct workloads;
  // bounded all the same. A message of hundreds of SVIDs is built per call instead: keeping it
  // would hold a second copy of that workload's whole cache.
  size_t built_count = 0;
  for (const auto& kept : built_) built_count += kept.size();
  if (cacheable && built_count < kMaxBuiltMessages && built->message.ok() &&
      (!built->message->has_value() || (*built->message)->size() <= kMaxBuiltMessageBytes)) {
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
    stream.last_sent_digest = built->digest;
    stream.call->Write(**built->message);
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
    JWTSVIDResponse response;
    std::set<std::string> hints;
    for (size_t i = 0; i < pending->svids.size(); ++i) {
      auto* out = response.add_svids();
      out->set_spiffe_id(pending->svids[i]->spiffe_id);
      out->set_svid(pending->svids[i]->token);
      if (!pending->hints[i].empty() && hints.insert(pending->hints[i]).second)
        out->set_hint(pending->hints[i]);
    }
    call->Write(response.SerializeAsString());
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
    auto json = UnverifiedClaimsJson(request.svid());
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
  const std::string spiffe_id = validated->spiffe_id.str();
  const std::string claims_bytes = claims_message->SerializeAsString();
  std::string response;
  {
    google::protobuf::io::StringOutputStream out(&response);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.WriteTag(google::protobuf::internal::WireFormatLite::MakeTag(
        1, google::protobuf::internal::WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
    coded.WriteVarint32(static_cast<uint32_t>(spiffe_id.size()));
    coded.WriteString(spiffe_id);
    coded.WriteTag(google::protobuf::internal::WireFormatLite::MakeTag(
        2, google::protobuf::internal::WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
    coded.WriteVarint32(static_cast<uint32_t>(claims_bytes.size()));
    coded.WriteString(claims_bytes);
  }
  call->Write(std::move(response));
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
