#include "agentd/unix_attestor.h"

#include <fcntl.h>
#include <grp.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "core/log.h"
#include "core/openssl_util.h"

namespace sigil::agentd {

namespace {

std::string ProcPath(pid_t pid, const char* leaf) { return "/proc/" + std::to_string(pid) + "/" + leaf; }

// Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. A pid
// with the same start time is the same process.
Result<std::string> StartTime(pid_t pid) {
  std::ifstream in(ProcPath(pid, "stat"));
  std::string stat;
  if (!in || !std::getline(in, stat)) return NotFoundError("process " + std::to_string(pid) + " is gone");
  // The command name (field 2) may hold spaces and ')' — skip past its last ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return NotFoundError("process " + std::to_string(pid) + " has no readable stat");
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
  }
  return field;
}

std::vector<gid_t> SupplementaryGroups(pid_t pid) {
  std::ifstream in(ProcPath(pid, "status"));
  std::string line;
  std::vector<gid_t> groups;
  while (std::getline(in, line)) {
    if (line.rfind("Groups:", 0) != 0) continue;
    std::istringstream ids(line.substr(7));
    long id;
    while (ids >> id) groups.push_back(static_cast<gid_t>(id));
  }
  return groups;
}

std::string UserName(uid_t uid) {
  std::vector<char> buffer(4096);
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (getpwuid_r(uid, &pw, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) return "";
  return pw.pw_name;
}

std::string GroupName(gid_t gid) {
  std::vector<char> buffer(16384);
  struct group gr {};
  struct group* found = nullptr;
  if (getgrgid_r(gid, &gr, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) return "";
  return gr.gr_name;
}

}  // namespace

Result<std::vector<Selector>> UnixWorkloadAttestor::Attest(pid_t pid, uid_t uid, gid_t gid) {
  SIGIL_ASSIGN_OR_RETURN(const std::string started, StartTime(pid));
  std::vector<Selector> selectors = {{"unix", "uid:" + std::to_string(uid)},
                                     {"unix", "gid:" + std::to_string(gid)}};
  if (const std::string user = UserName(uid); !user.empty()) selectors.push_back({"unix", "user:" + user});
  if (const std::string group = GroupName(gid); !group.empty()) selectors.push_back({"unix", "group:" + group});
  for (gid_t supplementary : SupplementaryGroups(pid)) {
    selectors.push_back({"unix", "supplementary_gid:" + std::to_string(supplementary)});
    if (const std::string name = GroupName(supplementary); !name.empty()) {
      selectors.push_back({"unix", "supplementary_group:" + name});
    }
  }
  char target[4096];
  const ssize_t length = ::readlink(ProcPath(pid, "exe").c_str(), target, sizeof(target) - 1);
  if (length > 0) {
    selectors.push_back({"unix", "path:" + std::string(target, static_cast<size_t>(length))});
    auto sha256 = Sha256OfExecutable(pid);
    if (sha256.ok()) {
      selectors.push_back({"unix", "sha256:" + *sha256});
    } else {
      LogDebug("workload binary not hashed", {{"pid", std::to_string(pid)}, {"error", sha256.status().message()}});
    }
  } else {
    LogDebug("workload path not readable", {{"pid", std::to_string(pid)}});
  }
  // Read again: if the pid now names another process, what was read may describe either one.
  auto after = StartTime(pid);
  if (!after.ok() || *after != started) {
    return NotFoundError("process " + std::to_string(pid) + " exited while it was being attested");
  }
  return SelectorSet(std::move(selectors)).items();
}

Result<std::string> UnixWorkloadAttestor::Sha256OfExecutable(pid_t pid) {
  // /proc/<pid>/exe opens the very file the process runs, even when its path was replaced.
  const int fd = ::open(ProcPath(pid, "exe").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return PermissionDeniedError("cannot open the binary of process " + std::to_string(pid));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return PermissionDeniedError("cannot stat the binary of process " + std::to_string(pid));
  }
  const FileKey key{st.st_dev, st.st_ino, int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec, st.st_size};
  {
    std::lock_guard lock(mutex_);
    if (auto it = sha256_cache_.find(key); it != sha256_cache_.end()) {
      ::close(fd);
      return it->second;
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
  return hex;
}

size_t UnixWorkloadAttestor::cached_hashes() const {
  std::lock_guard lock(mutex_);
  return sha256_cache_.size();
}

}  // namespace sigil::agentd
