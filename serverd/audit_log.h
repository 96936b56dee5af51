// The audit log (SPIRE's server.audit_log_enabled): one JSON line per admin API call, refused
// ones included, and per agent API call that changes state (an attestation, an agent SVID
// renewal), saying who called (uid and pid on the admin socket; the agent's SPIFFE ID or
// address on the agent API), which method, with which fields, and how it ended:
//
//   {"time":"2026-12-05T03:36:21Z","type":"audit","api":"admin","caller_uid":0,"caller_pid":4711,
//    "method":"/v1/entry/BatchDeleteEntry","request":{"ids":["..."]},"status":"OK"}
//
// Secrets never reach it: a join token, and bulky public material (CSRs, bundles, JWTs to
// check), appear as {"sha256": "<hex>"}, so a line can still be matched with what an operator
// holds. (A join token spent by an attestation names the agent, spiffe://<td>/spire/agent/
// join_token/<token>, as SPIRE names it: from then on it is an identifier, not a secret.) Lines go to their own file (server.audit_log_path, appended, created 0600), or, when
// none is named, to serverd's log.
//
// Thread safety: Record may be called from any thread; lines are written whole, one at a time.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <mutex>
#include <string_view>

#include "core/failure_log.h"
#include "core/status.h"

namespace sigil::serverd {

class AuditLog {
 public:
  // An empty `path` sends the lines to serverd's log.
  static Result<std::unique_ptr<AuditLog>> Open(const std::filesystem::path& path);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Adds "time" and "type" and writes the line. A failed write is logged (once a minute while it
  // lasts), and the call goes on: an unwritable audit file does not stop serverd serving.
  void Record(nlohmann::ordered_json event);

 private:
  explicit AuditLog(int fd) : fd_(fd) {}
  const int fd_;  // -1: serverd's log
  std::mutex mutex_;
  FailureLog failures_{LogLevel::kError, "writing the audit log failed", std::chrono::minutes(1)};
};

// `body` as the audit log may hold it: values that are secrets or bulky replaced by their SHA-256.
nlohmann::json AuditedFields(const nlohmann::json& body);

// CreateJoinToken's answer, whose "value" is the token.
nlohmann::json AuditedJoinToken(const nlohmann::json& created);

// {"sha256": "<hex of text's SHA-256>"}
nlohmann::json AuditDigest(std::string_view text);

}  // namespace sigil::serverd
