#include "bench/bench_server.h"

#include <unistd.h>

#include "core/csr.h"
#include "core/trust_bundle.h"
#include "hw/soft_key_store.h"
#include "serverd/admin/entry_json.h"
#include "tests/support/process.h"

namespace sigil::bench {

using nlohmann::json;

Result<std::unique_ptr<BenchServer>> BenchServer::Start(const BenchServerOptions& options,
                                                        const std::filesystem::path& dir) {
  auto server = std::unique_ptr<BenchServer>(new BenchServer());
  SIGIL_ASSIGN_OR_RETURN(server->trust_domain_, TrustDomain::Parse(kBenchTrustDomain));
  server->agent_port_ = testing::FreeLoopbackPort();
  std::filesystem::create_directories(dir / "admin");

  // Parsed as an operator's file is, so that every default the parser fills in (the node
  // attestors on, agent_ttl from default_x509_svid_ttl) holds here too; then what the bench varies.
  SIGIL_ASSIGN_OR_RETURN(serverd::ServerConfig config,
                         serverd::ParseServerConfig("server:\n  trust_domain: " + std::string(kBenchTrustDomain) +
                                                        "\n  log_level: warn\n",
                                                    "the bench's serverd config"));
  config.bind_address = "127.0.0.1";
  config.bind_port = server->agent_port_;
  config.socket_path = dir / "admin" / "api.sock";
  config.data_dir = dir / "data";
  config.sqlite_path = config.data_dir / "datastore.sqlite3";
  if (!options.postgres_connection_string.empty()) {
    config.datastore_kind = serverd::DatastoreKind::kPostgres;
    config.postgres_connection_string = options.postgres_connection_string;
    config.replica_name = options.replica_name;
  }
  config.ca_mode = options.ca_mode;
  config.signing_workers = options.signing_workers;
  config.key_store = options.key_store;
  // Every bench agent attests and signs from 127.0.0.1, at rates that are the point of the
  // bench; a real fleet spreads over many addresses and agents.
  config.attestations_per_ip = {.per_second = 1'000'000, .burst = 1'000'000};
  config.svids_per_agent = {.per_second = 1'000'000, .burst = 1'000'000};

  server->server_ = std::make_unique<serverd::Server>(config);
  SIGIL_RETURN_IF_ERROR(server->server_->Start());
  server->admin_ = std::make_unique<serverd::SocketAdminClient>(config.socket_path.string());
  if (!testing::WaitUntil([&] { return testing::LoopbackPortAccepts(server->agent_port_); })) {
    return Status(Code::kUnavailable, "the agent API never accepted connections");
  }
  return server;
}

BenchServer::~BenchServer() {
  if (server_) server_->Stop();
}

Result<std::string> BenchServer::NewJoinToken() { return NewJoinTokenThrough(*admin_); }

Result<X509Bundle> BenchServer::Bundle() { return BundleThrough(*admin_, trust_domain_); }

Result<std::vector<std::string>> BenchServer::CreateEntries(const std::vector<RegistrationEntry>& entries) {
  return CreateEntriesThrough(*admin_, entries);
}

Result<std::string> NewJoinTokenThrough(serverd::AdminClient& admin) {
  SIGIL_ASSIGN_OR_RETURN(json answer, admin.Call("/v1/agent/CreateJoinToken", json{{"ttl", 3600}}));
  return answer.value("value", "");
}

Result<X509Bundle> BundleThrough(serverd::AdminClient& admin, const TrustDomain& trust_domain) {
  SIGIL_ASSIGN_OR_RETURN(json answer, admin.Call("/v1/bundle/GetBundle", json::object()));
  return X509BundleFromPem(trust_domain, answer.value("pem", ""));
}

Result<std::vector<std::string>> CreateEntriesThrough(serverd::AdminClient& admin,
                                                      const std::vector<RegistrationEntry>& entries) {
  // Large enough to keep admin round trips negligible, small enough for one JSON body.
  constexpr size_t kAdminBatch = 1000;
  std::vector<std::string> ids;
  ids.reserve(entries.size());
  for (size_t start = 0; start < entries.size(); start += kAdminBatch) {
    json batch = json::array();
    for (size_t i = start; i < std::min(entries.size(), start + kAdminBatch); ++i) {
      batch.push_back(serverd::EntryToJson(entries[i]));
    }
    SIGIL_ASSIGN_OR_RETURN(json answer, admin.Call("/v1/entry/BatchCreateEntry", json{{"entries", batch}}));
    for (const json& result : answer["results"]) {
      if (!result.contains("entry")) {
        return Status(Code::kInternal, "entry not created: " + result["status"].dump());
      }
      ids.push_back(result["entry"].value("id", ""));
    }
  }
  return ids;
}

Result<std::unique_ptr<BenchAgent>> BenchAgent::Attest(BenchServer& server) {
  auto agent = std::unique_ptr<BenchAgent>(new BenchAgent());
  agent->loop_.Start();
  agentd::ServerClient::Options options;
  options.endpoint = {.host = "127.0.0.1", .port = server.agent_port()};
  options.trust_domain = server.trust_domain();
  options.timeout = std::chrono::seconds(60);
  agent->client_ = std::make_unique<agentd::ServerClient>(options, &agent->loop_.loop());
  SIGIL_ASSIGN_OR_RETURN(X509Bundle bundle, server.Bundle());
  SIGIL_RETURN_IF_ERROR(agent->client_->SetBundle(bundle));

  SIGIL_ASSIGN_OR_RETURN(std::string token, server.NewJoinToken());
  SIGIL_ASSIGN_OR_RETURN(agent->spiffe_id_, AttestWithJoinToken(*agent->client_, token));
  return agent;
}

Result<std::string> AttestWithJoinToken(agentd::ServerClient& client, const std::string& token) {
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, hw::GenerateSoftKey(KeyType::kEcP256));
  SIGIL_ASSIGN_OR_RETURN(Bytes csr, MakeCsr(key.get()));
  SIGIL_ASSIGN_OR_RETURN(agentd::AgentSvidAnswer svid, client.AttestWithJoinToken(token, csr));
  auto credentials = std::make_shared<transport::TlsCredentials>();
  SIGIL_ASSIGN_OR_RETURN(credentials->leaf, CertFromDer(svid.chain_der.front()));
  for (size_t i = 1; i < svid.chain_der.size(); ++i) {
    SIGIL_ASSIGN_OR_RETURN(X509Ptr cert, CertFromDer(svid.chain_der[i]));
    credentials->intermediates.push_back(std::move(cert));
  }
  credentials->key = std::move(key);
  SIGIL_RETURN_IF_ERROR(client.SetAgentCredentials(credentials));
  return svid.agent_id.str();
}

BenchAgent::~BenchAgent() {
  // The client's connections live on the loop: close them there before the loop stops.
  client_.reset();
  loop_.Stop();
}

RegistrationEntry WorkloadEntry(const TrustDomain& td, const std::string& path, const std::string& parent_id) {
  RegistrationEntry entry;
  entry.spiffe_id = "spiffe://" + td.name() + "/" + path;
  entry.parent_id = parent_id;
  entry.selectors = {{"unix", "uid:1000"}};
  return entry;
}

}  // namespace sigil::bench
