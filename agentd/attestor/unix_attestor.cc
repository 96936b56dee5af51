#include "agentd/attestor/unix_attestor.h"

#include <fcntl.h>
#include <grp.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <string_view>
#include <type_traits>

#include "core/log.h"
#include "core/openssl_util.h"

namespace sigil::agentd {

using transport::PeerProcess;

WorkloadAttestorPlugin UnixWorkloadAttestor::Plugin() {
  return {.name = "unix", .create = []() -> Result<std::shared_ptr<WorkloadAttestor>> {
            return std::shared_ptr<WorkloadAttestor>(std::make_shared<UnixWorkloadAttestor>());
          }};
}

Result<std::vector<Selector>> UnixWorkloadAttestor::Attest(const transport::PeerCredentials& caller) {
  return *AttestWith(caller.pid, caller.uid, caller.gid, caller.supplementary_groups, caller.process, std::nullopt, true);
}

std::optional<Result<std::vector<Selector>>> UnixWorkloadAttestor::AttestWithoutBlocking(
    const transport::PeerCredentials& caller, const std::optional<PeerProcess::ExecutableKey>& binary_now) {
  return AttestWith(caller.pid, caller.uid, caller.gid, caller.supplementary_groups, caller.process, binary_now, false);
}

namespace {

std::vector<gid_t> SupplementaryGroups(const std::string& status) {
  std::vector<gid_t> groups;
  const size_t line = status.find("\nGroups:");
  if (line == std::string::npos) return groups;
  const char* at = status.data() + line + 8;
  const char* end = status.data() + std::min(status.find('\n', line + 1), status.size());
  while (at < end) {
    while (at < end && (*at == ' ' || *at == '\t')) ++at;
    gid_t id = 0;
    const auto [next, error] = std::from_chars(at, end, id);
    if (error != std::errc()) break;
    groups.push_back(id);
    at = next;
  }
  return groups;
}

size_t LookupBufferSize(int name) {
  const long suggested = ::sysconf(name);
  return suggested > 0 ? static_cast<size_t>(suggested) : 16384;
}

static_assert(std::is_same_v<uid_t, unsigned> && std::is_same_v<gid_t, unsigned>, "one name cache type serves both");

std::string LookUpUserName(unsigned uid) {
  std::vector<char> buffer(LookupBufferSize(_SC_GETPW_R_SIZE_MAX));
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (getpwuid_r(uid, &pw, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) return "";
  return pw.pw_name;
}

std::string LookUpGroupName(unsigned gid) {
  std::vector<char> buffer(std::max<size_t>(LookupBufferSize(_SC_GETGR_R_SIZE_MAX), 16384));
  struct group gr {};
  struct group* found = nullptr;
  if (getgrgid_r(gid, &gr, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) return "";
  return gr.gr_name;
}

}  // namespace

Result<std::vector<Selector>> UnixWorkloadAttestor::Attest(pid_t pid, uid_t uid, gid_t gid,
                                                            const std::optional<std::vector<gid_t>>& supplementary_groups) {
  return *AttestWith(pid, uid, gid, supplementary_groups, nullptr, std::nullopt, true);
}

std::optional<Result<std::vector<Selector>>> UnixWorkloadAttestor::AttestIfHashed(
    pid_t pid, uid_t uid, gid_t gid, const std::optional<std::vector<gid_t>>& supplementary_groups) {
  return AttestWith(pid, uid, gid, supplementary_groups, nullptr, std::nullopt, false);
}

std::optional<Result<std::vector<Selector>>> UnixWorkloadAttestor::AttestWith(
    pid_t pid, uid_t uid, gid_t gid, const std::optional<std::vector<gid_t>>& groups,
    const std::shared_ptr<const PeerProcess>& connected, const std::optional<ExecutableKey>& binary_now, bool may_hash) {
  const auto exec_since_connect = [pid] {
    return PermissionDeniedError("process " + std::to_string(pid) +
                                 " runs another binary than when it opened the connection (exec)");
  };
  // Groups read from /proc may change under a running process; only a caller whose groups
  // came with its connection is remembered.
  std::optional<CallerKey> caller;
  if (groups) caller = CallerKey{pid, uid, gid, *groups};
  if (caller) {
    if (auto selectors = Reuse(*caller, connected, binary_now)) return Result<std::vector<Selector>>(std::move(*selectors));
  }
  // The process held since its connection was accepted, else held from now on.
  const std::shared_ptr<const PeerProcess> held = connected ? connected : PeerProcess::Hold(pid);
  SIGIL_RETURN_IF_ERROR(held->Pinned());
  const int directory = held->directory();
  // The binary as stat sees it first, then its path and hash: an exec or a rename in between
  // shows when it is stat'ed again at the end.
  const auto executable = PeerProcess::ExecutableOf(directory);
  if (connected && connected->executable_when_held() &&
      !PeerProcess::SameFile(executable, *connected->executable_when_held())) {
    return Result<std::vector<Selector>>(exec_since_connect());
  }
  std::vector<Selector> selectors = {{"unix", "uid:" + std::to_string(uid)},
                                     {"unix", "gid:" + std::to_string(gid)}};
  if (const std::string user = KnownName(user_names_, uid, LookUpUserName); !user.empty()) selectors.push_back({"unix", "user:" + user});
  if (const std::string group = KnownName(group_names_, gid, LookUpGroupName); !group.empty()) selectors.push_back({"unix", "group:" + group});
  for (gid_t supplementary : groups ? *groups : SupplementaryGroups(transport::ReadProcFile(directory, "status").value_or(""))) {
    selectors.push_back({"unix", "supplementary_gid:" + std::to_string(supplementary)});
    if (const std::string name = KnownName(group_names_, supplementary, LookUpGroupName); !name.empty()) {
      selectors.push_back({"unix", "supplementary_group:" + name});
    }
  }
  char target[4096];
  const ssize_t length = ::readlinkat(directory, "exe", target, sizeof(target) - 1);
  bool complete = executable.has_value();
  if (length > 0) {
    selectors.push_back({"unix", "path:" + std::string(target, static_cast<size_t>(length))});
    auto sha256 = Sha256OfExecutable(pid, directory, executable, may_hash);
    if (!sha256) return std::nullopt;
    if (sha256->ok()) {
      selectors.push_back({"unix", "sha256:" + **sha256});
    } else {
      complete = false;
      LogDebug("workload binary not hashed", {{"pid", std::to_string(pid)}, {"error", sha256->status().message()}});
    }
  } else {
    complete = false;
    LogDebug("workload path not readable", {{"pid", std::to_string(pid)}});
  }
  if (!held->StillThere()) {
    return NotFoundError("process " + std::to_string(pid) + " exited while it was being attested");
  }
  if (executable && !PeerProcess::SameFile(PeerProcess::ExecutableOf(directory), *executable)) {
    return PermissionDeniedError("process " + std::to_string(pid) + " changed its binary while it was being attested");
  }
  std::vector<Selector> attested = SelectorSet(std::move(selectors)).items();
  // What could not be read is read again next time rather than remembered.
  if (caller && complete) {
    Remember(std::move(*caller), {held, *executable, attested, std::chrono::steady_clock::now()});
  }
  return attested;
}

std::optional<std::vector<Selector>> UnixWorkloadAttestor::Reuse(const CallerKey& caller,
                                                                 const std::shared_ptr<const PeerProcess>& connected,
                                                                 const std::optional<ExecutableKey>& binary_now) {
  const auto same_hold = [&](const std::weak_ptr<const PeerProcess>& hold) {
    return !hold.owner_before(connected) && !connected.owner_before(hold);
  };
  Recent recent;
  bool connection_holds_pin_process = false;
  {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    ForgetExpired(now);
    auto it = recent_.find(caller);
    if (it == recent_.end()) return std::nullopt;
    if (now - it->second.attested_at >= kNameLifetime) {
      recent_.erase(it);
      return std::nullopt;
    }
    recent.pin = it->second.pin;
    recent.executable = it->second.executable;
    recent.selectors = it->second.selectors;
    connection_holds_pin_process =
        connected != nullptr && (connected == recent.pin || std::ranges::any_of(it->second.holds_of_pin_process, same_hold));
  }
  // One stat through the held directory, the only /proc read of a call made again: it fails
  // once that process has exited, whatever runs under its pid now, and a new binary (exec)
  // shows in it, as does the same binary renamed or linked elsewhere (its ctime moves).
  // The stat this call's caller check took through its connection's hold is that stat when
  // the hold is the remembered one, or holds the same process: two holds of one pid that are
  // both there at once (a process never comes back) hold one process. Asking whether a hold
  // is there costs a third of a stat of "exe"; it is asked once per connection.
  bool same_process = false;
  if (binary_now && connected != nullptr && connected->pid() == recent.pin->pid()) {
    same_process = connection_holds_pin_process || recent.pin->StillThere();
    if (same_process && !connection_holds_pin_process) NoteHoldOfPinProcess(caller, recent.pin, connected);
  }
  if ((same_process ? binary_now : PeerProcess::ExecutableOf(recent.pin->directory())) != recent.executable) {
    return std::nullopt;
  }
  // A connection held since its accept answers for the process that ran this binary then.
  if (connected != nullptr && connected->executable_when_held() &&
      !PeerProcess::SameFile(recent.executable, *connected->executable_when_held())) {
    return std::nullopt;
  }
  return std::move(recent.selectors);
}

void UnixWorkloadAttestor::NoteHoldOfPinProcess(const CallerKey& caller,
                                                const std::shared_ptr<const PeerProcess>& pin,
                                                const std::shared_ptr<const PeerProcess>& connected) {
  std::lock_guard lock(mutex_);
  auto it = recent_.find(caller);
  if (it == recent_.end() || it->second.pin != pin) return;  // attested anew meanwhile
  auto& holds = it->second.holds_of_pin_process;
  std::erase_if(holds, [](const auto& hold) { return hold.expired(); });
  if (holds.size() < kMaxHoldsOfOneProcess) holds.push_back(connected);
}

void UnixWorkloadAttestor::Remember(CallerKey caller, Recent recent) {
  std::lock_guard lock(mutex_);
  next_forget_ = {};  // a full sweep now, so a full map is full of live callers only
  ForgetExpired(recent.attested_at);
  if (recent_.size() >= kMaxRemembered && !recent_.contains(caller)) return;
  recent_.insert_or_assign(std::move(caller), std::move(recent));
}

void UnixWorkloadAttestor::ForgetExpired(std::chrono::steady_clock::time_point now) {
  // Swept on calls, at most once a second: a caller that never calls again lets go of its
  // process's descriptor within kNameLifetime and a second of the next call of anyone.
  if (now < next_forget_) return;
  next_forget_ = now + std::chrono::seconds(1);
  std::erase_if(recent_, [&](const auto& item) { return now - item.second.attested_at >= kNameLifetime; });
}

size_t UnixWorkloadAttestor::remembered_processes() const {
  std::lock_guard lock(mutex_);
  return recent_.size();
}

std::optional<Result<std::string>> UnixWorkloadAttestor::Sha256OfExecutable(
    pid_t pid, int proc_dir, const std::optional<ExecutableKey>& executable, bool may_hash) {
  if (!may_hash) {
    if (!executable) return std::nullopt;  // let the full path report why
    std::lock_guard lock(mutex_);
    if (auto it = sha256_cache_.find(*executable); it != sha256_cache_.end()) return Result<std::string>(it->second);
    return std::nullopt;
  }
  // /proc/<pid>/exe opens the very file the process runs, even when its path was replaced.
  const int fd = transport::OpenProcFile(proc_dir, "exe");
  if (fd < 0) return PermissionDeniedError("cannot open the binary of process " + std::to_string(pid));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return PermissionDeniedError("cannot stat the binary of process " + std::to_string(pid));
  }
  const ExecutableKey key = PeerProcess::KeyOf(st);
  {
    std::lock_guard lock(mutex_);
    if (auto it = sha256_cache_.find(key); it != sha256_cache_.end()) {
      ::close(fd);
      return Result<std::string>(it->second);
    }
  }
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buffer(1 << 16);
  ssize_t n;
  while ((n = ::read(fd, buffer.data(), buffer.size())) > 0) EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(n));
  ::close(fd);
  if (n < 0) return PermissionDeniedError("cannot read the binary of process " + std::to_string(pid));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &digest_length);
  const std::string hex = HexEncode({digest, digest_length});
  std::lock_guard lock(mutex_);
  sha256_cache_[key] = hex;
  return Result<std::string>(hex);
}

std::string UnixWorkloadAttestor::KnownName(NameCache& known, unsigned id, std::string (*look_up)(unsigned)) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    if (auto it = known.find(id); it != known.end() && now - it->second.looked_up < kNameLifetime) {
      return it->second.name;
    }
  }
  std::string name = look_up(id);  // outside the lock: NSS may ask a directory server
  std::lock_guard lock(mutex_);
  known[id] = {name, now};
  return name;
}

size_t UnixWorkloadAttestor::cached_hashes() const {
  std::lock_guard lock(mutex_);
  return sha256_cache_.size();
}

}  // namespace sigil::agentd
