// An in-process serverd for end-to-end load runs, and agents that talk to it over its real
// agent API (HTTP/2 + TLS on loopback) with agentd's own client. Tokens, entries and the bundle
// go through the admin API on its Unix socket, as `serverd` commands would send them.
//
// Thread safety: BenchServer from one thread; a BenchAgent's client from many (see
// agentd/sync/server_client.h), its set-up from one.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "agentd/sync/server_client.h"
#include "core/status.h"
#include "hw/key_store.h"
#include "serverd/admin/admin_server.h"
#include "serverd/server.h"
#include "serverd/server_config.h"
#include "transport/event_loop.h"

namespace sigil::bench {

struct BenchServerOptions {
  hw::KeyStoreConfig key_store;
  serverd::CaMode ca_mode = serverd::CaMode::kDirect;
  int signing_workers = 2;
  // Set: the datastore is this PostgreSQL database, shared with other replicas (each with its
  // own replica_name and key store); empty: SQLite in the server's folder.
  std::string postgres_connection_string;
  std::string replica_name;
};

inline const char kBenchTrustDomain[] = "bench.example";

class BenchServer {
 public:
  // Config in code, data and admin socket under `dir`, agent API on a free loopback port.
  static Result<std::unique_ptr<BenchServer>> Start(const BenchServerOptions& options,
                                                    const std::filesystem::path& dir);
  ~BenchServer();

  const TrustDomain& trust_domain() const { return trust_domain_; }
  int agent_port() const { return agent_port_; }
  serverd::AdminClient& admin() { return *admin_; }

  Result<std::string> NewJoinToken();
  Result<X509Bundle> Bundle();
  // Creates entries in admin batches; returns their ids in order.
  Result<std::vector<std::string>> CreateEntries(const std::vector<RegistrationEntry>& entries);

 private:
  BenchServer() = default;
  TrustDomain trust_domain_;
  int agent_port_ = 0;
  std::unique_ptr<serverd::Server> server_;
  std::unique_ptr<serverd::SocketAdminClient> admin_;
};

// One agent: its loop, its client and, once attested, its SVID as mTLS credentials.
class BenchAgent {
 public:
  // Attests with a fresh join token.
  static Result<std::unique_ptr<BenchAgent>> Attest(BenchServer& server);
  ~BenchAgent();

  agentd::ServerClient& client() { return *client_; }
  const std::string& spiffe_id() const { return spiffe_id_; }

 private:
  BenchAgent() = default;
  transport::LoopThread loop_;
  std::unique_ptr<agentd::ServerClient> client_;
  std::string spiffe_id_;
};

// Attests through `client` with `token` and a fresh P-256 key, and makes the agent SVID its
// mTLS credentials; the agent's SPIFFE ID.
Result<std::string> AttestWithJoinToken(agentd::ServerClient& client, const std::string& token);

// The admin calls the benches make, to any serverd's admin API (in this process or not).
Result<std::string> NewJoinTokenThrough(serverd::AdminClient& admin);
Result<X509Bundle> BundleThrough(serverd::AdminClient& admin, const TrustDomain& trust_domain);
// In admin batches; the new entries' ids in order.
Result<std::vector<std::string>> CreateEntriesThrough(serverd::AdminClient& admin,
                                                      const std::vector<RegistrationEntry>& entries);

// A workload entry `spiffe://<td>/<path>` parented to `parent_id`, selecting unix:uid:1000.
RegistrationEntry WorkloadEntry(const TrustDomain& td, const std::string& path, const std::string& parent_id);

}  // namespace sigil::bench
