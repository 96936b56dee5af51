#include "agentd/sync/server_client.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <future>

#include "core/base64url.h"
#include "core/log.h"
#include "core/wire/convert.h"
#include "core/x509_svid.h"

namespace sigil::agentd {

namespace {

// The body of a successful answer, or the error an Outcome body carries.
Result<const wire::Envelope*> Answer(const Bytes& message, wire::Body expected) {
  SIGIL_ASSIGN_OR_RETURN(const wire::Envelope* envelope, wire::VerifiedEnvelope(message));
  if (envelope->body_type() == wire::Body::Outcome) {
    Status status = wire::StatusFromOutcome(envelope->body_as_Outcome());
    if (status.ok()) return Status(Code::kInternal, "serverd answered OK without a body");
    return status;
  }
  if (envelope->body_type() != expected && expected != wire::Body::NONE) {
    return Status(Code::kInternal, std::string("serverd answered a ") + wire::EnumNameBody(envelope->body_type()) +
                                       " where a " + wire::EnumNameBody(expected) + " was expected");
  }
  return envelope;
}

Result<AgentSvidAnswer> AgentSvidFrom(const wire::AgentSvidResponse* response) {
  SIGIL_ASSIGN_OR_RETURN(SpiffeId id, SpiffeId::Parse(wire::StringOf(response->agent_spiffe_id())));
  SIGIL_ASSIGN_OR_RETURN(TrustBundle bundle, wire::TrustBundleFromWire(response->bundle()));
  AgentSvidAnswer answer{std::move(id), wire::CertificatesFromWire(response->svid_chain()), std::move(bundle)};
  if (answer.chain_der.empty()) return Status(Code::kInternal, "serverd answered an agent SVID without certificates");
  return answer;
}

Bytes ToBytes(std::span<const uint8_t> span) { return Bytes(span.begin(), span.end()); }

// The agent API's requests and answers as bytes, apart from the calls that carry them, so that
// the blocking and the asynchronous calls share them.
Bytes EntrySyncRequestMessage(int64_t since_revision, std::chrono::milliseconds wait) {
  flatbuffers::FlatBufferBuilder builder(64);
  auto request = wire::CreateEntrySyncRequest(builder, static_cast<uint64_t>(since_revision),
                                              static_cast<uint32_t>(wait.count()));
  return wire::FinishMessage(builder, request);
}

Result<EntrySyncAnswer> EntrySyncAnswerFromMessage(const Bytes& message) {
  SIGIL_ASSIGN_OR_RETURN(const wire::Envelope* envelope, Answer(message, wire::Body::EntrySyncResponse));
  const auto* response = envelope->body_as_EntrySyncResponse();
  SIGIL_ASSIGN_OR_RETURN(TrustBundle bundle, wire::TrustBundleFromWire(response->bundle()));
  EntrySyncAnswer answer{static_cast<int64_t>(response->revision()), response->full(), {}, {}, std::move(bundle)};
  if (response->entries() != nullptr) {
    answer.entries.reserve(response->entries()->size());
    for (const auto* entry : *response->entries()) answer.entries.push_back(wire::EntryFromWire(entry));
  }
  if (response->removed_entry_ids() != nullptr) {
    for (const auto* id : *response->removed_entry_ids()) answer.removed_entry_ids.push_back(id->str());
  }
  if (response->federated_bundles() != nullptr) {
    for (const auto* federated : *response->federated_bundles()) {
      SIGIL_ASSIGN_OR_RETURN(TrustBundle parsed, wire::TrustBundleFromWire(federated));
      if (parsed.trust_domain() == answer.bundle.trust_domain()) {
        return Status(Code::kInternal, "serverd sent its own trust domain as a federated bundle");
      }
      std::string name = parsed.trust_domain().name();
      answer.federated_bundles.insert_or_assign(std::move(name), std::move(parsed));
    }
  }
  return answer;
}

Bytes CsrBatchRequestMessage(const std::vector<CsrRequestItem>& items) {
  size_t size = 256;
  for (const auto& item : items) size += item.csr_der.size() + item.entry_id.size() + 32;
  flatbuffers::FlatBufferBuilder builder(size);
  std::vector<flatbuffers::Offset<wire::CsrItem>> wire_items;
  wire_items.reserve(items.size());
  for (const auto& item : items) {
    wire_items.push_back(wire::CreateCsrItem(builder, builder.CreateString(item.entry_id),
                                             builder.CreateVector(item.csr_der)));
  }
  auto request = wire::CreateCsrBatchRequest(builder, builder.CreateVector(wire_items));
  return wire::FinishMessage(builder, request);
}

// One answer per item of a batch of `expected`, in order.
Result<std::vector<CsrAnswer>> CsrAnswersFromMessage(const Bytes& message, size_t expected) {
  SIGIL_ASSIGN_OR_RETURN(const wire::Envelope* envelope, Answer(message, wire::Body::CsrBatchResponse));
  const auto* results = envelope->body_as_CsrBatchResponse()->results();
  const size_t count = results == nullptr ? 0 : results->size();
  if (count != expected) {
    return Status(Code::kInternal, "serverd answered " + std::to_string(count) + " results for " +
                                       std::to_string(expected) + " CSRs");
  }
  std::vector<CsrAnswer> answers;
  answers.reserve(count);
  for (const auto* result : *results) {
    CsrAnswer& answer = answers.emplace_back(CsrAnswer{wire::StringOf(result->entry_id()),
                                                       wire::StatusFromOutcome(result->outcome()),
                                                       wire::CertificatesFromWire(result->svid_chain())});
    if (result->not_before() != 0 && result->not_after() > result->not_before()) {
      answer.validity = {FromUnixSeconds(result->not_before()), FromUnixSeconds(result->not_after())};
    }
  }
  return answers;
}


}  // namespace

// One HTTP/2 connection and the calls riding on it; dropped once replaced and idle.
struct ServerClient::Connection {
  std::shared_ptr<transport::Http2Client> client;
  uint64_t generation = 0;
  size_t address = 0;  // index in addresses_
  std::string peer;    // for logs
};

namespace {

// Whether a call's outcome says the server itself failed (unreachable, gone, silent), rather
// than that it answered.
bool ServerFailed(const Status& status) {
  return status.code() == Code::kUnavailable || status.code() == Code::kDeadlineExceeded;
}

// Whether `host` is an IP address rather than a name to resolve.
bool IsAddressLiteral(const std::string& host) {
  in6_addr any{};
  return inet_pton(AF_INET, host.c_str(), &any) == 1 || inet_pton(AF_INET6, host.c_str(), &any) == 1;
}

}  // namespace

Status ServerClient::ResolveIfNeeded() {
  {
    std::lock_guard lock(mu_);
    if (!addresses_.empty() && failures_in_a_row_ < addresses_.size()) return Status::Ok();
  }
  std::vector<ServerAddress> resolved;
  std::string failures;
  for (const transport::Endpoint& server : ConfiguredServers()) {
    if (server.is_unix() || IsAddressLiteral(server.host)) {
      resolved.push_back({server, server.host.empty() ? "localhost" : server.host});
      continue;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (const int rc = getaddrinfo(server.host.c_str(), nullptr, &hints, &found); rc != 0) {
      failures += (failures.empty() ? "" : "; ") + server.host + ": " + gai_strerror(rc);
      continue;
    }
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
      char text[INET6_ADDRSTRLEN] = {};
      const void* raw = a->ai_family == AF_INET ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
                                                : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
      if (inet_ntop(a->ai_family, raw, text, sizeof text) == nullptr) continue;
      resolved.push_back({transport::Endpoint::Tcp(text, server.port), server.host});
    }
    freeaddrinfo(found);
  }
  std::lock_guard lock(mu_);
  if (resolved.empty()) {
    // Keep what was resolved before, if anything: better an address that failed than none.
    if (!addresses_.empty()) return Status::Ok();
    return UnavailableError("cannot resolve serverd's address: " + failures);
  }
  // Where the failures had got to: a name resolving to the same addresses goes on from there.
  current_address_ = current_address_ % resolved.size();
  addresses_ = std::move(resolved);
  failures_in_a_row_ = 0;
  return Status::Ok();
}

void ServerClient::NoteOutcome(const Connection& connection, const Status& status) {
  std::lock_guard lock(mu_);
  if (!ServerFailed(status)) {
    failures_in_a_row_ = 0;
    return;
  }
  // Calls that were on a server already left count once, by the first of them.
  if (connection.address != current_address_) return;
  ++failures_in_a_row_;
  if (addresses_.size() < 2) return;
  current_address_ = (current_address_ + 1) % addresses_.size();
  LogWarn("serverd failed; the next calls go to another replica",
          {{"failed", connection.peer}, {"next", addresses_[current_address_].endpoint.ToString()},
           {"error", status.ToString()}});
}

ServerClient::ServerClient(Options options, transport::EventLoop* loop)
    : options_(std::move(options)),
      loop_(loop),
      bundle_source_(std::make_shared<transport::TrustBundleSource>(nullptr)) {
  // Servers given by address need no resolver: known at once, so that a call made from the
  // loop (the asynchronous ones) works before any blocking call has resolved anything.
  std::vector<ServerAddress> addresses;
  for (const transport::Endpoint& server : ConfiguredServers()) {
    if (!server.is_unix() && !IsAddressLiteral(server.host)) return;
    addresses.push_back({server, server.host.empty() ? "localhost" : server.host});
  }
  addresses_ = std::move(addresses);
}

std::vector<transport::Endpoint> ServerClient::ConfiguredServers() const {
  std::vector<transport::Endpoint> configured = {options_.endpoint};
  configured.insert(configured.end(), options_.more_endpoints.begin(), options_.more_endpoints.end());
  return configured;
}

ServerClient::~ServerClient() { Close(); }

void ServerClient::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  loop_->Invoke([this] {
    if (bootstrap_) bootstrap_->client->Close();
    if (mutual_) mutual_->client->Close();
    bootstrap_.reset();
    mutual_.reset();
  });
}

Status ServerClient::SetBundle(const X509Bundle& bundle) {
  if (bundle.trust_domain != options_.trust_domain) {
    return InvalidArgumentError("the trust bundle is for " + bundle.trust_domain.name() + ", not " +
                                options_.trust_domain.name());
  }
  if (bundle.authorities.empty()) return InvalidArgumentError("the trust bundle has no X.509 authorities");
  bundle_source_->Set(std::make_shared<const X509Bundle>(bundle));
  std::lock_guard lock(mu_);
  if (!has_bundle_) ++generation_;  // leave insecure bootstrap behind at once
  has_bundle_ = true;
  return Status::Ok();
}

bool ServerClient::has_bundle() const {
  std::lock_guard lock(mu_);
  return has_bundle_;
}

Status ServerClient::SetAgentCredentials(std::shared_ptr<const transport::TlsCredentials> credentials) {
  {
    std::lock_guard lock(mu_);
    credentials_ = std::move(credentials);
    ++generation_;
  }
  // The bootstrap connection served attestation, which is over: with an SVID every call is
  // mutual TLS, so it is closed rather than held open at serverd for the agent's whole life
  // (a fleet's agents would otherwise cost serverd two descriptors and two TLS sessions each).
  loop_->Post([this] {
    if (!bootstrap_) return;
    bootstrap_->client->Close();
    bootstrap_.reset();
  });
  return Status::Ok();
}

Result<std::shared_ptr<const transport::TlsContext>> ServerClient::MakeTlsContext(bool mutual_tls) {
  transport::TlsOptions tls;
  {
    std::lock_guard lock(mu_);
    if (mutual_tls) {
      if (!credentials_) return UnauthenticatedError("the agent has no SVID yet; it must attest first");
      tls.credentials = credentials_;
    }
    if (has_bundle_) {
      tls.peer_bundle = bundle_source_;
      tls.authorize = transport::AuthorizeId(ServerSpiffeId(options_.trust_domain));
    } else if (options_.insecure_bootstrap) {
      tls.insecure_skip_verify = true;
    } else {
      return FailedPreconditionError("no trust bundle to verify serverd with (set trust_bundle_path, or insecure_bootstrap)");
    }
  }
  return transport::TlsContext::CreateClient(std::move(tls));
}

Result<std::shared_ptr<ServerClient::Connection>> ServerClient::ConnectionFor(bool mutual_tls) {
  std::shared_ptr<Connection>& slot = mutual_tls ? mutual_ : bootstrap_;
  uint64_t generation;
  size_t address;
  ServerAddress server;
  {
    std::lock_guard lock(mu_);
    if (closed_) return UnavailableError("the connection to serverd is closed (agentd is stopping)");
    if (addresses_.empty()) return UnavailableError("serverd's address is not resolved yet");
    generation = generation_;
    address = current_address_;
    server = addresses_[address];
  }
  if (slot && slot->client->usable() && slot->generation == generation && slot->address == address) return slot;
  SIGIL_ASSIGN_OR_RETURN(auto tls, MakeTlsContext(mutual_tls));
  auto connection = std::make_shared<Connection>();
  connection->generation = generation;
  connection->address = address;
  connection->peer = server.endpoint.ToString();
  transport::Http2ClientOptions http;
  http.authority = server.name;
  connection->client = transport::Http2Client::Connect(loop_, server.endpoint, std::move(tls), http);
  // The replaced connection stays open while its calls finish: they hold it (see Call).
  slot = connection;
  return connection;
}

void ServerClient::CallAsync(const char* path, Bytes body, bool mutual_tls, std::chrono::milliseconds timeout,
                             std::function<void(Result<Bytes>)> done) {
  struct Pending {
    std::function<void(Result<Bytes>)> done;
    std::shared_ptr<Connection> connection;  // keeps a replaced connection alive until the answer
    std::shared_ptr<transport::Http2ClientStream> stream;
    uv_timer_t* timer = nullptr;
    int http_status = 0;
    std::string body;
    bool timed_out = false;

    void Finish(Result<Bytes> result) {
      if (!done) return;
      if (timer != nullptr) {
        uv_close(reinterpret_cast<uv_handle_t*>(timer), [](uv_handle_t* handle) { delete reinterpret_cast<uv_timer_t*>(handle); });
        timer = nullptr;
      }
      connection.reset();
      auto callback = std::move(done);
      done = nullptr;
      callback(std::move(result));
    }
  };
  auto pending = std::make_shared<Pending>();
  pending->done = std::move(done);
  loop_->Post([this, pending, path, body = std::move(body), mutual_tls, timeout]() mutable {
    auto connection = ConnectionFor(mutual_tls);
    if (!connection.ok()) return pending->Finish(connection.status());
    pending->connection = *connection;
    transport::Http2ResponseHandler handler;
    handler.on_headers = [pending](int status, const transport::Headers&, bool) { pending->http_status = status; };
    handler.on_data = [pending](std::string_view data) { pending->body.append(data); };
    handler.on_close = [this, pending, path, timeout](const Status& status, const transport::Headers&) {
      if (pending->timed_out) {
        Status silent = DeadlineExceededError(std::string("serverd did not answer ") + path + " within " +
                                              std::to_string(timeout.count()) + " ms");
        NoteOutcome(*pending->connection, silent);
        return pending->Finish(std::move(silent));
      }
      NoteOutcome(*pending->connection, status);
      if (!status.ok()) return pending->Finish(status);
      if (pending->http_status != 200) {
        return pending->Finish(Status(Code::kInternal, "serverd answered HTTP " + std::to_string(pending->http_status) +
                                                           ": " + pending->body.substr(0, 200)));
      }
      pending->Finish(ToBytes(AsBytes(pending->body)));
    };
    pending->stream = (*connection)->client->Submit(
        "POST", path, {{"content-type", wire::kContentType}}, std::string(body.begin(), body.end()), std::move(handler));
    pending->timer = new uv_timer_t;
    uv_timer_init(loop_->uv(), pending->timer);
    // The timer's handle points back at the call only while the call is pending.
    pending->timer->data = pending.get();
    uv_timer_start(pending->timer, [](uv_timer_t* timer) {
      auto* call = static_cast<Pending*>(timer->data);
      call->timed_out = true;
      if (call->stream) call->stream->Cancel();
    }, static_cast<uint64_t>(timeout.count()), 0);
  });
}

Result<Bytes> ServerClient::Call(const char* path, Bytes body, bool mutual_tls, std::chrono::milliseconds timeout) {
  SIGIL_RETURN_IF_ERROR(ResolveIfNeeded());
  auto done = std::make_shared<std::promise<Result<Bytes>>>();
  auto future = done->get_future();
  CallAsync(path, std::move(body), mutual_tls, timeout,
            [done](Result<Bytes> result) { done->set_value(std::move(result)); });
  return future.get();
}

Result<AttestAnswer> ServerClient::Attest(const Bytes& attestation_request) {
  return Counted(attestations_, [&]() -> Result<AttestAnswer> {
    SIGIL_ASSIGN_OR_RETURN(Bytes message, Call(wire::kAttestPath, attestation_request, false, options_.timeout));
    SIGIL_ASSIGN_OR_RETURN(const wire::Envelope* envelope, Answer(message, wire::Body::NONE));
    if (envelope->body_type() == wire::Body::AgentSvidResponse) {
      SIGIL_ASSIGN_OR_RETURN(AgentSvidAnswer svid, AgentSvidFrom(envelope->body_as_AgentSvidResponse()));
      return AttestAnswer(std::move(svid));
    }
    if (envelope->body_type() == wire::Body::AttestationChallenge) {
      return AttestAnswer(wire::TpmDevIdChallengeFromWire(*envelope->body_as_AttestationChallenge()));
    }
    return Status(Code::kInternal, std::string("serverd answered attestation with a ") +
                                       wire::EnumNameBody(envelope->body_type()));
  });
}

Result<AgentSvidAnswer> ServerClient::AttestWithJoinToken(const std::string& token, const Bytes& csr_der) {
  flatbuffers::FlatBufferBuilder builder(1024);
  auto data = wire::CreateJoinTokenAttestation(builder, builder.CreateString(token));
  auto csr = builder.CreateVector(csr_der);
  auto request = wire::CreateAttestationRequest(builder, wire::AttestationData::JoinTokenAttestation, data.Union(), csr);
  SIGIL_ASSIGN_OR_RETURN(AttestAnswer answer, Attest(wire::FinishMessage(builder, request)));
  if (auto* svid = std::get_if<AgentSvidAnswer>(&answer)) return std::move(*svid);
  return Status(Code::kInternal, "serverd answered a join token with a challenge");
}

Result<AgentSvidAnswer> ServerClient::RenewAgentSvid(const Bytes& csr_der) {
  return Counted(agent_svid_rotations_, [&]() -> Result<AgentSvidAnswer> {
    flatbuffers::FlatBufferBuilder builder(1024);
    auto request = wire::CreateAgentSvidRequest(builder, builder.CreateVector(csr_der));
    SIGIL_ASSIGN_OR_RETURN(Bytes message, Call(wire::kRenewAgentSvidPath, wire::FinishMessage(builder, request), true,
                                               options_.timeout));
    SIGIL_ASSIGN_OR_RETURN(const wire::Envelope* envelope, Answer(message, wire::Body::AgentSvidResponse));
    return AgentSvidFrom(envelope->body_as_AgentSvidResponse());
  });
}

Result<EntrySyncAnswer> ServerClient::SyncEntries(int64_t since_revision, std::chrono::milliseconds wait) {
  return Counted(entry_syncs_, [&]() -> Result<EntrySyncAnswer> {
    SIGIL_ASSIGN_OR_RETURN(Bytes message, Call(wire::kSyncEntriesPath, EntrySyncRequestMessage(since_revision, wait),
                                               true, options_.timeout + wait));
    return EntrySyncAnswerFromMessage(message);
  });
}

void ServerClient::SyncEntriesAsync(int64_t since_revision, std::chrono::milliseconds wait,
                                    std::function<void(Result<EntrySyncAnswer>)> done) {
  const auto started = std::chrono::steady_clock::now();
  CallAsync(wire::kSyncEntriesPath, EntrySyncRequestMessage(since_revision, wait), true, options_.timeout + wait,
            [this, started, done = std::move(done)](Result<Bytes> message) {
              Result<EntrySyncAnswer> answer =
                  message.ok() ? EntrySyncAnswerFromMessage(*message) : Result<EntrySyncAnswer>(message.status());
              entry_syncs_.Record(answer.ok() ? Code::kOk : answer.status().code(),
                                  std::chrono::steady_clock::now() - started);
              done(std::move(answer));
            });
}

Result<std::vector<CsrAnswer>> ServerClient::SignCsrBatch(const std::vector<CsrRequestItem>& items) {
  return Counted(svid_syncs_, [&]() -> Result<std::vector<CsrAnswer>> {
    SIGIL_ASSIGN_OR_RETURN(Bytes message, Call(wire::kSignCsrBatchPath, CsrBatchRequestMessage(items), true,
                                               options_.timeout));
    SIGIL_ASSIGN_OR_RETURN(std::vector<CsrAnswer> answers, CsrAnswersFromMessage(message, items.size()));
    CountRotated(answers);
    return answers;
  });
}

void ServerClient::SignCsrBatchAsync(const std::vector<CsrRequestItem>& items,
                                     std::function<void(Result<std::vector<CsrAnswer>>)> done) {
  const auto started = std::chrono::steady_clock::now();
  CallAsync(wire::kSignCsrBatchPath, CsrBatchRequestMessage(items), true, options_.timeout,
            [this, started, count = items.size(), done = std::move(done)](Result<Bytes> message) {
              Result<std::vector<CsrAnswer>> answers = message.ok() ? CsrAnswersFromMessage(*message, count)
                                                                    : Result<std::vector<CsrAnswer>>(message.status());
              if (answers.ok()) CountRotated(*answers);
              svid_syncs_.Record(answers.ok() ? Code::kOk : answers.status().code(),
                                 std::chrono::steady_clock::now() - started);
              done(std::move(answers));
            });
}

void ServerClient::CountRotated(const std::vector<CsrAnswer>& answers) {
  if (svids_rotated_ == nullptr) return;
  for (const CsrAnswer& answer : answers) {
    if (answer.status.ok()) svids_rotated_->Add();
  }
}

namespace {

Bytes JwtSvidRequestMessage(const std::string& entry_id, const std::vector<std::string>& audience) {
  flatbuffers::FlatBufferBuilder builder(512);
  auto id = builder.CreateString(entry_id);
  auto audience_vector = builder.CreateVectorOfStrings(audience);
  return wire::FinishMessage(builder, wire::CreateJwtSvidRequest(builder, id, audience_vector));
}

}  // namespace

Result<JwtAnswer> JwtAnswerFromMessage(const Bytes& message) {
  SIGIL_ASSIGN_OR_RETURN(const wire::Envelope* envelope, Answer(message, wire::Body::JwtSvidResponse));
  const auto* response = envelope->body_as_JwtSvidResponse();
  SIGIL_RETURN_IF_ERROR(wire::StatusFromOutcome(response->outcome()));
  // Saturating: seconds near the ends of int64 overflow the clock's nanoseconds.
  return JwtAnswer{wire::StringOf(response->token()), FromUnixSeconds(response->expires_at())};
}

Result<JwtAnswer> ServerClient::MintJwtSvid(const std::string& entry_id, const std::vector<std::string>& audience) {
  SIGIL_ASSIGN_OR_RETURN(Bytes message, Call(wire::kMintJwtSvidPath, JwtSvidRequestMessage(entry_id, audience), true,
                                             options_.timeout));
  return JwtAnswerFromMessage(message);
}

void ServerClient::MintJwtSvidAsync(const std::string& entry_id, const std::vector<std::string>& audience,
                                    std::function<void(Result<JwtAnswer>)> done) {
  CallAsync(wire::kMintJwtSvidPath, JwtSvidRequestMessage(entry_id, audience), true, options_.timeout,
            [done = std::move(done)](Result<Bytes> message) {
              if (!message.ok()) return done(message.status());
              done(JwtAnswerFromMessage(*message));
            });
}

}  // namespace sigil::agentd
