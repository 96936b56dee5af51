// agentd's link to serverd's agent API (serverd/api/agent_api.h): HTTP/2 over TLS, flatbuffers
// bodies. Attestation goes over a connection without a client certificate; everything else
// over mutual TLS with the agent's own SVID. Both connections check that the server presents
// spiffe://<td>/spire/server under the current trust bundle (or, with insecure bootstrap, do
// not check — only until the first bundle is known).
//
// Several servers (replicas on one datastore) may be given: calls go to one at a time, and when
// a call finds it unreachable or silent past its timeout, the next call goes to the next, in
// order, wrapping around. A DNS name is resolved (off the loop, by a calling thread) into all
// its addresses, and resolved again once every address has failed in a row.
//
// Calls block the calling thread (never the client's loop) until the answer, an error or the
// timeout. Many calls may be in flight at once from several threads; they share the
// connections as HTTP/2 streams.
//
// Thread safety: every method may be called from any thread except the loop's own.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/call_metrics.h"
#include "core/openssl_util.h"
#include "core/registration_entry.h"
#include "core/spiffe_id.h"
#include "core/x509_ca.h"
#include "core/status.h"
#include "core/tpm_devid.h"
#include "core/trust_bundle.h"
#include "transport/event_loop.h"
#include "transport/http2_client.h"
#include "transport/peer_auth.h"
#include "transport/socket_stream.h"
#include "transport/tls.h"

namespace sigil::agentd {

struct AgentSvidAnswer {
  SpiffeId agent_id;
  std::vector<Bytes> chain_der;  // leaf first
  TrustBundle bundle;
};

// The server asks for a proof of possession before it answers with an SVID.
using AttestAnswer = std::variant<AgentSvidAnswer, TpmDevIdChallenge>;

struct EntrySyncAnswer {
  int64_t revision = 0;
  bool full = false;
  std::vector<RegistrationEntry> entries;
  std::vector<std::string> removed_entry_ids;
  TrustBundle bundle;
  // Whole: the bundles of the trust domains the agent's entries federate with, by name.
  std::map<std::string, TrustBundle> federated_bundles;
};

struct CsrRequestItem {
  std::string entry_id;
  Bytes csr_der;
};

struct CsrAnswer {
  std::string entry_id;
  Status status;
  std::vector<Bytes> chain_der;  // leaf first; empty unless status is OK
  // The leaf's validity as serverd states it; nullopt from a server that does not.
  std::optional<std::pair<TimePoint, TimePoint>> validity;
};

struct JwtAnswer {
  std::string token;
  std::chrono::system_clock::time_point expires_at;
};

// serverd's answer to MintJwtSvid, read from its message; exposed to test its reading of
// serverd's bytes without a server.
Result<JwtAnswer> JwtAnswerFromMessage(const Bytes& message);

class ServerClient {
 public:
  struct Options {
    transport::Endpoint endpoint;
    // Other replicas, tried in this order after `endpoint` when the one in use fails.
    std::vector<transport::Endpoint> more_endpoints;
    TrustDomain trust_domain;
    std::chrono::milliseconds timeout{30'000};
    // Accept any server certificate until SetBundle() is first called.
    bool insecure_bootstrap = false;
    // SPIRE's call counters of the agent's calls, when set: spire_agent_node_attestor_new_svid
    // (each attestation request, two for a TPM DevID's challenge), spire_agent_agent_svid_rotate,
    // spire_agent_manager_sync_fetch_entries_updates (a long poll: its time includes the wait)
    // and spire_agent_manager_sync_fetch_svids_updates (a SignCsrBatch); and Sigil's
    // sigil_agent_svids_rotated_total, the workload SVIDs those batches brought.
    MetricsRegistry* metrics = nullptr;
  };

  // `loop` runs the connections; it must outlive the client.
  ServerClient(Options options, transport::EventLoop* loop);
  ~ServerClient();
  ServerClient(const ServerClient&) = delete;
  ServerClient& operator=(const ServerClient&) = delete;

  // The roots the server's SVID must chain to; swapped at run time on bundle rotation.
  Status SetBundle(const X509Bundle& bundle);
  bool has_bundle() const;
  // The agent's SVID and key, for mTLS; new calls use them, calls in flight finish on the old
  // connection.
  Status SetAgentCredentials(std::shared_ptr<const transport::TlsCredentials> credentials);

  // Closes the connections; calls in flight and every later call fail with Unavailable.
  // For shutdown: threads blocked in a long poll return at once.
  void Close();

  // `attestation_request` is a finished AttestationRequest message (any attestation kind).
  Result<AttestAnswer> Attest(const Bytes& attestation_request);
  Result<AgentSvidAnswer> AttestWithJoinToken(const std::string& token, const Bytes& csr_der);
  Result<AgentSvidAnswer> RenewAgentSvid(const Bytes& csr_der);
  // `wait` > 0 holds the call at the server until something changes or the wait ends.
  Result<EntrySyncAnswer> SyncEntries(int64_t since_revision, std::chrono::milliseconds wait);
  // One answer per item, in order; the call fails as a whole only when the batch never reached
  // a signer (unauthenticated, banned, overloaded, unreachable).
  Result<std::vector<CsrAnswer>> SignCsrBatch(const std::vector<CsrRequestItem>& items);
  // The same two calls without blocking, for a caller that drives many agents from a loop (the
  // fleet bench): `done` runs once, on the client's loop.
  void SyncEntriesAsync(int64_t since_revision, std::chrono::milliseconds wait,
                        std::function<void(Result<EntrySyncAnswer>)> done);
  void SignCsrBatchAsync(const std::vector<CsrRequestItem>& items,
                         std::function<void(Result<std::vector<CsrAnswer>>)> done);
  Result<JwtAnswer> MintJwtSvid(const std::string& entry_id, const std::vector<std::string>& audience);
  // The same without blocking: `done` runs once, on the client's loop. For callers that are
  // themselves on a loop (the Workload API).
  void MintJwtSvidAsync(const std::string& entry_id, const std::vector<std::string>& audience,
                        std::function<void(Result<JwtAnswer>)> done);

 private:
  struct Connection;
  Result<Bytes> Call(const char* path, Bytes body, bool mutual_tls, std::chrono::milliseconds timeout);
  // `done` runs once on the loop: the answer's bytes, or why there is none. Cancelled after
  // `timeout`.
  void CallAsync(const char* path, Bytes body, bool mutual_tls, std::chrono::milliseconds timeout,
                 std::function<void(Result<Bytes>)> done);
  // Loop thread: the connection for the next call, opened when missing, unusable or to a server
  // no longer the one in use.
  Result<std::shared_ptr<Connection>> ConnectionFor(bool mutual_tls);
  // `endpoint`, then `more_endpoints`.
  std::vector<transport::Endpoint> ConfiguredServers() const;
  // Adds the SVIDs signed among `answers` to sigil_agent_svids_rotated_total.
  void CountRotated(const std::vector<CsrAnswer>& answers);
  // A calling thread: resolves the configured servers into addresses when there are none yet or
  // every one has failed in a row since the last resolution.
  Status ResolveIfNeeded();
  // Any thread: a call through `connection` ended with `status`; a failure of the server moves the
  // next calls on to the next address.
  void NoteOutcome(const Connection& connection, const Status& status);
  Result<std::shared_ptr<const transport::TlsContext>> MakeTlsContext(bool mutual_tls);

  // Records the call's outcome and time in `counter`.
  template <typename Call>
  static auto Counted(CallCounter& counter, const Call& call) -> decltype(call()) {
    const auto started = std::chrono::steady_clock::now();
    auto result = call();
    counter.Record(result.ok() ? Code::kOk : result.status().code(), std::chrono::steady_clock::now() - started);
    return result;
  }

  Options options_;
  transport::EventLoop* loop_;
  CallCounter attestations_{options_.metrics, "spire_agent_node_attestor_new_svid",
                            "Attestation requests to serverd, by status"};
  CallCounter agent_svid_rotations_{options_.metrics, "spire_agent_agent_svid_rotate",
                                    "Renewals of the agent's own SVID, by status"};
  CallCounter entry_syncs_{options_.metrics, "spire_agent_manager_sync_fetch_entries_updates",
                           "Entry syncs (long polls) with serverd, by status"};
  CallCounter svid_syncs_{options_.metrics, "spire_agent_manager_sync_fetch_svids_updates",
                          "Batches of CSRs sent to serverd for signing, by status"};
  Counter* svids_rotated_ =
      options_.metrics == nullptr
          ? nullptr
          : &options_.metrics->GetCounter("sigil_agent_svids_rotated_total",
                                          "Workload X509-SVIDs serverd signed for this agent: at the first sync, "
                                          "at half of their life and when an entry changes");
  std::shared_ptr<transport::TrustBundleSource> bundle_source_;

  mutable std::mutex mu_;
  bool has_bundle_ = false;
  std::shared_ptr<const transport::TlsCredentials> credentials_;
  uint64_t generation_ = 0;  // bumped when the bundle or credentials change: new connections
  bool closed_ = false;
  // A server as connections are opened to it: an address, and the name it was configured by
  // (the HTTP/2 authority).
  struct ServerAddress {
    transport::Endpoint endpoint;
    std::string name;
  };
  std::vector<ServerAddress> addresses_;  // resolved; empty until the first call
  size_t current_address_ = 0;
  size_t failures_in_a_row_ = 0;

  // Loop thread only.
  std::shared_ptr<Connection> bootstrap_;
  std::shared_ptr<Connection> mutual_;
};

}  // namespace sigil::agentd
