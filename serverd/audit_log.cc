#include "serverd/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>

#include "core/log.h"
#include "core/openssl_util.h"

namespace sigil::serverd {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// Members whose values are secrets (join tokens) or bulky public material (CSRs, bundles,
// certificates, tokens to check).
const std::set<std::string, std::less<>> kDigested = {"token", "join_token", "csr", "jwks",
                                                      "pem", "svid", "private_key", "key"};

constexpr auto kReplaceBadUtf8 = json::error_handler_t::replace;

json Audited(const json& value) {
  if (value.is_array()) {
    json out = json::array();
    for (const json& item : value) out.push_back(Audited(item));
    return out;
  }
  if (!value.is_object()) return value;
  json out = json::object();
  for (const auto& [name, member] : value.items()) {
    if (kDigested.contains(name)) {
      out[name] = AuditDigest(member.is_string() ? member.get<std::string>() : member.dump(-1, ' ', false, kReplaceBadUtf8));
    } else {
      out[name] = Audited(member);
    }
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::Open(const std::filesystem::path& path) {
  if (path.empty()) return std::unique_ptr<AuditLog>(new AuditLog(-1));
  // O_NOFOLLOW: a link planted where the file goes would send the lines elsewhere.
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return Status(Code::kFailedPrecondition, "cannot open the audit log " + path.string() + ": " + std::strerror(errno));
  }
  return std::unique_ptr<AuditLog>(new AuditLog(fd));
}

AuditLog::~AuditLog() {
  if (fd_ >= 0) ::close(fd_);
}

void AuditLog::Record(ordered_json event) {
  ordered_json line{{"time", NowRfc3339()}, {"type", "audit"}};
  for (auto& [name, value] : event.items()) line[name] = std::move(value);
  const std::string text = line.dump(-1, ' ', false, kReplaceBadUtf8);
  if (fd_ < 0) {
    LogInfo("audit", {{"event", text}});
    return;
  }
  std::lock_guard lock(mutex_);
  const std::string with_newline = text + "\n";
  // O_APPEND writes of one line go in whole; a short write is finished, not interleaved (the
  // lock keeps other lines out).
  size_t written = 0;
  while (written < with_newline.size()) {
    const ssize_t n = ::write(fd_, with_newline.data() + written, with_newline.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failures_.Failed({{"error", std::strerror(errno)}});
      return;
    }
    written += static_cast<size_t>(n);
  }
  failures_.Succeeded("writing the audit log recovered");
}

json AuditedFields(const json& body) { return Audited(body); }

json AuditedJoinToken(const json& created) {
  json out = Audited(created);
  if (const auto value = created.find("value"); value != created.end() && value->is_string()) {
    out["value"] = AuditDigest(value->get<std::string>());
  }
  return out;
}

json AuditDigest(std::string_view text) {
  return json{{"sha256", HexEncode(Sha256(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size())))}};
}

}  // namespace sigil::serverd
