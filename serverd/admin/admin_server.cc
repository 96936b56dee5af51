#include "serverd/admin/admin_server.h"

#include <unistd.h>

#include "core/log.h"

namespace sigil::serverd {

using nlohmann::json;

namespace {

int HttpStatusFor(Code code) {
  switch (code) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument:
    case Code::kFailedPrecondition:
    case Code::kOutOfRange: return 400;
    case Code::kUnauthenticated: return 401;
    case Code::kPermissionDenied: return 403;
    case Code::kNotFound: return 404;
    case Code::kAlreadyExists:
    case Code::kAborted: return 409;
    case Code::kResourceExhausted: return 429;
    case Code::kUnimplemented: return 501;
    case Code::kUnavailable: return 503;
    case Code::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

void Answer(const std::shared_ptr<transport::Http2ServerStream>& stream, const Result<json>& result) {
  const json body = result.ok() ? *result
                                : json{{"code", static_cast<int>(result.status().code())},
                                       {"message", result.status().message()}};
  stream->Respond(HttpStatusFor(result.status().code()), {{"content-type", "application/json"}});
  stream->Write(body.dump() + "\n");
  stream->End();
}

}  // namespace

AdminServer::AdminServer(AdminApi& api, std::set<uint32_t> allowed_uids, AuditLog* audit)
    : api_(api), allowed_uids_(std::move(allowed_uids)), audit_(audit) {
  allowed_uids_.insert(static_cast<uint32_t>(::getuid()));
  allowed_uids_.insert(0);
}

AdminServer::~AdminServer() { Stop(); }

Status AdminServer::Start(const std::string& socket_path) {
  loop_target_ = std::make_unique<EventLoopCompletionTarget>(loop_.loop());
  workers_ = std::make_unique<WorkerPool>(
      WorkerPool::Options{.queue_capacity = 256, .workers = 1, .max_batch = 1, .max_wait = {}, .name = "admin"},
      nullptr);
  loop_.Start();
  Status listening = loop_.loop().Invoke([&]() -> Status {
    server_ = std::make_unique<transport::Http2Server>(
        &loop_.loop(), transport::Http2ServerOptions{},
        [this](std::shared_ptr<transport::Http2ServerStream> stream) { Handle(std::move(stream)); });
    transport::UnixListenerOptions options;
    options.path = socket_path;
    options.file_mode = 0770;
    options.dir_mode = 0700;
    return server_->ListenUnix(options);
  });
  if (!listening.ok()) {
    loop_.Stop();
    return std::move(listening).AddContext("admin socket " + socket_path);
  }
  started_ = true;
  LogInfo("admin API listening", {{"socket_path", socket_path}});
  return Status::Ok();
}

void AdminServer::Stop() {
  if (!started_) return;
  started_ = false;
  loop_.loop().Invoke([&] { server_->Shutdown(); });
  workers_->Stop();
  loop_.Stop();
  server_.reset();
}

void AdminServer::Handle(std::shared_ptr<transport::Http2ServerStream> stream) {
  const auto& credentials = stream->peer().credentials;
  const std::string path = stream->request().path;
  // Refusals are recorded here, on the loop: they touch neither the datastore nor a key.
  const auto refuse = [&](const Status& refusal) {
    Audit(credentials, path, nullptr, Result<json>(refusal));
    Answer(stream, refusal);
  };
  if (!credentials || allowed_uids_.count(credentials->uid) == 0) {
    LogWarn("admin API refused a caller", {{"uid", credentials ? std::to_string(credentials->uid) : "unknown"}});
    return refuse(PermissionDeniedError("uid " + (credentials ? std::to_string(credentials->uid) : std::string("?")) +
                                        " may not use the admin API; see server.admin_uids"));
  }
  if (stream->request().method != "POST") {
    return refuse(InvalidArgumentError("admin methods are called with POST and a JSON body"));
  }
  const json body = stream->request().body.empty() ? json::object()
                                                   : json::parse(stream->request().body, nullptr, false);
  if (body.is_discarded()) return refuse(InvalidArgumentError("the request body is not valid JSON"));
  auto result = std::make_shared<Result<json>>(Status(Code::kInternal, "not run"));
  const Status queued = workers_->Submit(
      {.run = [this, result, path, body, credentials] {
         *result = api_.Handle(path, body);
         Audit(credentials, path, &body, *result);
         if (after_each_call_) after_each_call_();
       },
       .complete = [stream, result] { Answer(stream, *result); },
       .target = loop_target_.get()});
  if (!queued.ok()) refuse(queued);
}

void AdminServer::Audit(const std::optional<transport::PeerCredentials>& caller, const std::string& path,
                        const json* body, const Result<json>& result) {
  if (audit_ == nullptr) return;
  nlohmann::ordered_json event{{"api", "admin"}};
  if (caller) {
    event["caller_uid"] = caller->uid;
    event["caller_pid"] = caller->pid;
  }
  event["method"] = path;
  if (body != nullptr) event["request"] = AuditedFields(*body);
  event["status"] = CodeName(result.status().code());
  if (!result.ok()) event["status_message"] = result.status().message();
  // What a change made (the ids of entries created, a join token's digest); reads are left
  // out, their answers are as large as the store.
  const std::string_view method = std::string_view(path).substr(path.rfind('/') + 1);
  if (result.ok() && method == "CreateJoinToken") {
    event["response"] = AuditedJoinToken(*result);
  } else if (result.ok() && method.starts_with("Batch")) {
    event["response"] = AuditedFields(*result);
  }
  audit_->Record(std::move(event));
}

Result<json> SocketAdminClient::Call(const std::string& path, const json& body) {
  SIGIL_ASSIGN_OR_RETURN(transport::Http2Response response,
                         transport::Http2RequestBlocking(transport::Endpoint::Unix(socket_path_), "POST", path,
                                                         {{"content-type", "application/json"}}, body.dump()));
  const json parsed = json::parse(response.body, nullptr, false);
  if (parsed.is_discarded()) {
    return Status(Code::kInternal, "serverd answered " + std::to_string(response.status) + " without JSON");
  }
  if (response.status != 200) {
    return Status(static_cast<Code>(parsed.value("code", 2)), parsed.value("message", "request failed"));
  }
  return parsed;
}

}  // namespace sigil::serverd
