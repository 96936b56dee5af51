// The admin API on its Unix socket: HTTP/2 with prior knowledge, JSON bodies, POST to the
// method's path. The socket's folder is 0700 and the socket 0770; on top of the file modes,
// each connection's peer uid (SO_PEERCRED) must be serverd's own, root's, or one listed in
// server.admin_uids — anyone else is answered 403.
//
// Methods run on a worker thread, never on the event loop: they touch the datastore and may
// sign with the CA's key in a token.
//
// Thread safety: Start and Stop from the owning thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "serverd/admin/admin_api.h"
#include "serverd/admin/admin_client.h"
#include "serverd/audit_log.h"
#include "serverd/worker_pool.h"
#include "transport/event_loop.h"
#include "transport/http2_client.h"
#include "transport/http2_server.h"

namespace sigil::serverd {

class AdminServer {
 public:
  // Every call, refused ones included, is recorded in `audit` when it is not null.
  AdminServer(AdminApi& api, std::set<uint32_t> allowed_uids, AuditLog* audit = nullptr);
  ~AdminServer();

  // Runs `after` on the admin worker after every method call. Before Start.
  void SetAfterEachCall(std::function<void()> after) { after_each_call_ = std::move(after); }

  Status Start(const std::string& socket_path);
  void Stop();

 private:
  void Handle(std::shared_ptr<transport::Http2ServerStream> stream);
  void Audit(const std::optional<transport::PeerCredentials>& caller, const std::string& path,
             const nlohmann::json* body, const Result<nlohmann::json>& result);

  AdminApi& api_;
  std::set<uint32_t> allowed_uids_;
  AuditLog* const audit_;
  transport::LoopThread loop_;
  std::unique_ptr<transport::Http2Server> server_;
  std::unique_ptr<CompletionTarget> loop_target_;
  std::unique_ptr<WorkerPool> workers_;
  std::function<void()> after_each_call_;
  bool started_ = false;
};

// Calls the admin API over its socket; what the `serverd` commands use.
class SocketAdminClient final : public AdminClient {
 public:
  explicit SocketAdminClient(std::string socket_path) : socket_path_(std::move(socket_path)) {}
  Result<nlohmann::json> Call(const std::string& path, const nlohmann::json& body) override;

 private:
  std::string socket_path_;
};

}  // namespace sigil::serverd
