// Unix workload attestation: the selectors SPIRE's `unix` attestor gives a process, from the
// pid, uid and gid its socket connection carries (SO_PEERCRED):
//   unix:uid:<n> unix:user:<name> unix:gid:<n> unix:group:<name>
//   unix:supplementary_gid:<n> unix:supplementary_group:<name>
//   unix:path:<binary> unix:sha256:<hex of the binary>
// uid, gid and the supplementary groups come from the kernel with the connection; the rest is
// read from /proc (a pidfd makes sure it was all one process's), and
// what cannot be read (a process of another user when agentd is not root) is left out, so an
// entry that needs it does not match — attestation fails closed.
//
// Thread safety: Attest may be called from any thread; the caches are shared.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/selector.h"
#include "core/status.h"

namespace sigil::agentd {

class UnixWorkloadAttestor {
 public:
  // How long a user or group name looked up once is used before it is looked up again: the
  // lookup goes through NSS (reading /etc/passwd, or asking a directory) on every call
  // otherwise, which costs more than the rest of an attestation. A renamed user is seen
  // within this long.
  static constexpr std::chrono::seconds kNameLifetime{5};

  // `supplementary_groups` as the caller's connection carries them (SO_PEERGROUPS); read from
  // /proc/<pid>/status when not given. NotFound when the process is gone, or exited while it
  // was being read (its pid may then name another process).
  Result<std::vector<Selector>> Attest(pid_t pid, uid_t uid, gid_t gid,
                                       const std::optional<std::vector<gid_t>>& supplementary_groups = std::nullopt);
  // The same, but only when the binary's hash is already known: nullopt when it would have to
  // be read, so that a caller on an event loop can hand that work to another thread.
  std::optional<Result<std::vector<Selector>>> AttestIfHashed(
      pid_t pid, uid_t uid, gid_t gid, const std::optional<std::vector<gid_t>>& supplementary_groups = std::nullopt);

  size_t cached_hashes() const;

 private:
  std::optional<Result<std::vector<Selector>>> AttestWith(pid_t pid, uid_t uid, gid_t gid,
                                                          const std::optional<std::vector<gid_t>>& groups,
                                                          bool may_hash);
  // proc_dir: the process's open /proc/<pid> directory. nullopt: not cached and `may_hash` is false.
  std::optional<Result<std::string>> Sha256OfExecutable(pid_t pid, int proc_dir, bool may_hash);

  // Hashing a binary is costly; keyed by what changes when it is replaced.
  using FileKey = std::tuple<dev_t, ino_t, int64_t /*mtime ns*/, off_t /*size*/>;
  struct Name {
    std::string name;  // empty: there is no such user or group
    std::chrono::steady_clock::time_point looked_up;
  };
  using NameCache = std::unordered_map<unsigned /*uid or gid*/, Name>;
  // The name of `id` from `known` while younger than kNameLifetime, else from `look_up`.
  std::string KnownName(NameCache& known, unsigned id, std::string (*look_up)(unsigned));

  mutable std::mutex mutex_;
  std::map<FileKey, std::string> sha256_cache_;
  NameCache user_names_;
  NameCache group_names_;
};

}  // namespace sigil::agentd
