// The SPIFFE Workload API (SPIFFE_Workload_API.md) on the agent's public Unix socket, served
// from the SvidCache, with grpc.health.v1.Health/Check beside it.
//
//  - Every SpiffeWorkloadAPI call must carry the metadata `workload.spiffe.io: true`, or it
//    ends InvalidArgument "security header missing from request".
//  - The caller is the process at the other end of the socket: its SO_PEERCRED goes through
//    the workload attestors the options name (attestor/workload_attestor.h; unix by default),
//    and the union of their selectors picks the entries. No entry: PermissionDenied "no
//    identity issued".
//  - The messages are built by workload/messages.h, once per cache version and set of
//    selectors, framed for gRPC once and shared by every stream that sends them.
//  - FetchX509SVID, FetchX509Bundles and FetchJWTBundles stream: the first message at once
//    (FetchX509SVID waits while the caller's entries have no SVID yet), then a new one
//    whenever what the caller would receive changes. A stream whose caller lost every entry
//    ends PermissionDenied, as the standard says a redaction of every SVID does.
//  - FetchJWTSVID answers from the cache's JWT-SVIDs while they are before half-life, and asks
//    the minter for the rest; more audiences than kMaxJwtAudiences, or one longer than
//    kMaxJwtAudienceBytes (core/jwt_svid.h), is InvalidArgument before either is asked.
//    ValidateJWTSVID checks a token against the caller's bundles.
//
// Thread safety: construct, Start, Stop and destroy on the loop's thread (or before it runs).
// The cache may change from any thread; the server hears of it and re-evaluates its open
// streams on its own loop.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agentd/attestor/workload_attestor.h"
#include "agentd/sync/svid_cache.h"
#include "agentd/workload/messages.h"
#include "agentd/workload/workload_metrics.h"
#include "core/failure_log.h"
#include "core/metrics.h"
#include "core/status.h"
#include "transport/event_loop.h"
#include "transport/grpc.h"
#include "transport/http2_server.h"
#include "transport/peer_process.h"

namespace sigil::agentd {

inline constexpr char kDefaultWorkloadSocket[] = "/tmp/sigil-agent/public/api.sock";
inline constexpr char kWorkloadSecurityHeader[] = "workload.spiffe.io";

// Asks the server for a JWT-SVID of `entry` for `audience`. Called on the loop's thread, so it
// must not wait for the answer; `done` may be called on any thread, once.
using JwtSvidMinter =
    std::function<void(const RegistrationEntry& entry, std::vector<std::string> audience,
                       std::function<void(Result<WorkloadJwtSvid>)> done)>;

struct WorkloadApiOptions {
  std::string socket_path = kDefaultWorkloadSocket;
  // Null: only JWT-SVIDs already in the cache are handed out; the rest are Unavailable.
  JwtSvidMinter mint_jwt;
  // Health/Check answers SERVING while this returns true; null means always. Called on the
  // loop's thread, so it must not block.
  std::function<bool()> ready;
  // Workload attestors by registered name; every caller is attested by each.
  std::vector<std::string> workload_attestors = {"unix"};
  // When set, what workload_metrics.h lists.
  MetricsRegistry* metrics = nullptr;
  transport::Http2ServerOptions http2;
};

class WorkloadApiServer {
 public:
  WorkloadApiServer(transport::EventLoop* loop, SvidCache* cache, WorkloadApiOptions options);
  ~WorkloadApiServer();
  WorkloadApiServer(const WorkloadApiServer&) = delete;
  WorkloadApiServer& operator=(const WorkloadApiServer&) = delete;

  // Makes the workload attestors (an unknown name is an error naming it), creates the
  // socket's folder (0755) when missing, replaces a stale socket file, and listens with mode
  // 0777 so that every local process can ask for its identity.
  Status Start();
  // Ends the open streams (Unavailable) and closes the socket and every connection.
  void Stop();

  // Streams open now, across the three streaming methods.
  size_t open_streams() const { return streams_.size(); }
  const std::string& socket_path() const { return options_.socket_path; }
  // The connection gauges, before a scrape; loop thread.
  void ReadConnectionMetrics() {
    if (server_) metrics_.ReadConnections(*server_);
  }

 private:
  enum class StreamKind { kX509Svid, kX509Bundles, kJwtBundles };
  static constexpr size_t kStreamKinds = 3;
  struct OpenStream {
    StreamKind kind;
    std::shared_ptr<transport::GrpcServerCall> call;
    SelectorSet selectors;
    // SHA-256 of the last message's deterministic serialization, to skip identical pushes: a
    // stream of a thousand SVIDs would otherwise hold megabytes to compare against.
    Bytes last_sent_digest;
  };
  // A message as streams send it: nullopt while there is nothing to send yet.
  struct BuiltMessage {
    Result<std::optional<FramedMessage>> message = std::optional<FramedMessage>();
    Bytes digest;  // of the message's payload, when there is one
  };
  // Lives as long as anything posted to the loop on this server's behalf.
  struct Liveness {
    std::atomic<bool> refresh_posted{false};
    bool alive = true;  // loop thread
  };

  void RegisterMethods();
  // Checks the security header, then attests the caller: on the loop when every attestor can
  // answer without blocking, else on libuv's thread pool (hashing a binary must not stall
  // every other workload on this loop); goes on with its selectors on the loop. `next` does
  // not run once the server is gone or the call ended.
  void Authenticate(std::shared_ptr<transport::GrpcServerCall> call,
                    std::function<void(Result<SelectorSet>)> next);
  // The caller checks of the calls Authenticate held this turn of the loop, at once.
  void CheckCallers();
  // Authenticate's attestation, once the caller is known to be the process that connected.
  void Attest(std::shared_ptr<transport::GrpcServerCall> call,
              const std::optional<transport::PeerProcess::ExecutableKey>& binary_now,
              std::function<void(Result<SelectorSet>)> next);
  void OpenStreamFor(StreamKind kind, const std::string& method,
                     std::shared_ptr<transport::GrpcServerCall> call, SelectorSet selectors);
  // The message `kind` gives `selectors` in `snapshot`, built once per snapshot version.
  std::shared_ptr<const BuiltMessage> MessageFor(StreamKind kind, const SelectorSet& selectors,
                                                 const SvidCache::Snapshot& snapshot);
  // Writes, waits or ends one stream after a change; false when the stream ended.
  bool Advance(OpenStream& stream, const SvidCache::Snapshot& snapshot);
  void RefreshStreams();
  void EndStreams(const Status& why);
  void FetchJwtSvid(std::shared_ptr<transport::GrpcServerCall> call, const std::string& request,
                    const SelectorSet& selectors);
  void ValidateJwtSvid(std::shared_ptr<transport::GrpcServerCall> call, const std::string& request,
                       const SelectorSet& selectors);
  void HealthCheck(std::shared_ptr<transport::GrpcServerCall> call, std::string request);
  void Finish(transport::GrpcServerCall& call, const std::string& method, Status status);

  transport::EventLoop* loop_;
  SvidCache* cache_;
  WorkloadApiOptions options_;
  WorkloadApiMetrics metrics_{options_.metrics};
  // Made by Start; shared with attestations still running on the thread pool.
  std::vector<std::shared_ptr<WorkloadAttestor>> attestors_;
  transport::GrpcRouter router_;
  std::unique_ptr<transport::Http2Server> server_;
  std::shared_ptr<Liveness> liveness_ = std::make_shared<Liveness>();
  // Calls waiting for their caller check, run by `caller_check_` after the loop's reads.
  struct AwaitingCallerCheck {
    std::shared_ptr<transport::GrpcServerCall> call;
    std::function<void(Result<SelectorSet>)> next;
  };
  std::vector<AwaitingCallerCheck> awaiting_caller_check_;
  uv_check_t* caller_check_ = nullptr;  // made by Start; freed by its close callback
  // Calls of a process that is no longer the one that connected (peer_process.h), per uid: a
  // relaying process calls as often as it likes, and the log takes a line a minute.
  FailureLogByKey refused_callers_{LogLevel::kWarn, "Workload API call refused", std::chrono::minutes(1)};
  uint64_t subscription_ = 0;
  int stop_hook_ = 0;
  std::map<uint64_t, OpenStream> streams_;
  // Messages built from the snapshot of version `built_version_`, by kind and selectors: a
  // workload calling again, or many with the same selectors, costs a lookup, not a build.
  // One map per kind, so a lookup takes the caller's selectors as they are, without a copy.
  uint64_t built_version_ = 0;
  using BuiltBySelectors = std::map<std::vector<Selector>, std::shared_ptr<const BuiltMessage>>;
  std::array<BuiltBySelectors, kStreamKinds> built_;
  uint64_t next_stream_ = 1;
};

}  // namespace sigil::agentd
