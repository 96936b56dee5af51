// Unix workload attestation: the selectors SPIRE's `unix` attestor gives a process, from the
// pid, uid and gid its socket connection carries (SO_PEERCRED):
//   unix:uid:<n> unix:user:<name> unix:gid:<n> unix:group:<name>
//   unix:supplementary_gid:<n> unix:supplementary_group:<name>
//   unix:path:<binary> unix:sha256:<hex of the binary>
// uid and gid come from the kernel and are always given; the rest is read from /proc, and
// what cannot be read (a process of another user when agentd is not root) is left out, so an
// entry that needs it does not match — attestation fails closed.
//
// Thread safety: Attest may be called from any thread; the sha256 cache is shared.
#pragma once

#include <sys/types.h>

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "core/selector.h"
#include "core/status.h"

namespace sigil::agentd {

class UnixWorkloadAttestor {
 public:
  // NotFound when the process is gone, or was replaced by another with the same pid while it
  // was being read.
  Result<std::vector<Selector>> Attest(pid_t pid, uid_t uid, gid_t gid);

  size_t cached_hashes() const;

 private:
  Result<std::string> Sha256OfExecutable(pid_t pid);

  // Hashing a binary is costly; keyed by what changes when it is replaced.
  using FileKey = std::tuple<dev_t, ino_t, int64_t /*mtime ns*/, off_t /*size*/>;
  mutable std::mutex mutex_;
  std::map<FileKey, std::string> sha256_cache_;
};

}  // namespace sigil::agentd
