// Unix workload attestation: the selectors SPIRE's `unix` attestor gives a process, from the
// pid, uid and gid its socket connection carries (SO_PEERCRED):
//   unix:uid:<n> unix:user:<name> unix:gid:<n> unix:group:<name>
//   unix:supplementary_gid:<n> unix:supplementary_group:<name>
//   unix:path:<binary> unix:sha256:<hex of the binary>
// uid, gid and the supplementary groups come from the kernel with the connection; the rest is
// read from /proc through the process held since its connection was accepted
// (transport/peer_process.h: a caller that exec'd since then is refused), and
// what cannot be read (a process of another user when agentd is not root) is left out, so an
// entry that needs it does not match — attestation fails closed.
//
// Registered as "unix" (attestor/registrations.cc).
//
// Thread safety: Attest may be called from any thread; the caches are shared.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "agentd/attestor/workload_attestor.h"
#include "core/selector.h"
#include "core/status.h"
#include "transport/peer_process.h"

namespace sigil::agentd {

class UnixWorkloadAttestor : public WorkloadAttestor {
 public:
  static WorkloadAttestorPlugin Plugin();

  // WorkloadAttestor: the caller's SO_PEERCRED and SO_PEERGROUPS.
  Result<std::vector<Selector>> Attest(const transport::PeerCredentials& caller) override;
  // Answers when the caller's binary has been hashed before (see AttestIfHashed).
  std::optional<Result<std::vector<Selector>>> AttestWithoutBlocking(
      const transport::PeerCredentials& caller, const std::optional<transport::PeerProcess::ExecutableKey>& binary_now) override;

  // How long a user or group name looked up once is used before it is looked up again: the
  // lookup goes through NSS (reading /etc/passwd, or asking a directory) on every call
  // otherwise, which costs more than the rest of an attestation. A renamed user is seen
  // within this long.
  static constexpr std::chrono::seconds kNameLifetime{5};

  // `supplementary_groups` as the caller's connection carries them (SO_PEERGROUPS); read from
  // /proc/<pid>/status when not given. NotFound when the process is gone, or exited while it
  // was being read (its pid may then name another process). A caller whose groups are given is
  // remembered for a few seconds (see Recent).
  Result<std::vector<Selector>> Attest(pid_t pid, uid_t uid, gid_t gid,
                                       const std::optional<std::vector<gid_t>>& supplementary_groups = std::nullopt);
  // The same, but only when the binary's hash is already known: nullopt when it would have to
  // be read, so that a caller on an event loop can hand that work to another thread.
  std::optional<Result<std::vector<Selector>>> AttestIfHashed(
      pid_t pid, uid_t uid, gid_t gid, const std::optional<std::vector<gid_t>>& supplementary_groups = std::nullopt);

  size_t cached_hashes() const;
  // Processes whose attestation is kept for their next call (see Recent).
  size_t remembered_processes() const;

  // At most this many attested processes are remembered at once: each holds a descriptor.
  static constexpr size_t kMaxRemembered = 128;

 private:
  // `connected`: the process held since the caller's connection was accepted, when the
  // listener holds them; else the pid is held from now on. `binary_now`: its binary as stat'ed
  // through it in this call, when it was (PeerProcess::StillTheCaller).
  std::optional<Result<std::vector<Selector>>> AttestWith(pid_t pid, uid_t uid, gid_t gid,
                                                          const std::optional<std::vector<gid_t>>& groups,
                                                          const std::shared_ptr<const transport::PeerProcess>& connected,
                                                          const std::optional<transport::PeerProcess::ExecutableKey>& binary_now,
                                                          bool may_hash);
  // Keys the hashes, and tells a remembered caller still runs the binary it was attested with.
  using ExecutableKey = transport::PeerProcess::ExecutableKey;

  // proc_dir: the process's open /proc/<pid> directory; `executable`: ExecutableOf it.
  // nullopt: not cached and `may_hash` is false.
  std::optional<Result<std::string>> Sha256OfExecutable(pid_t pid, int proc_dir,
                                                        const std::optional<ExecutableKey>& executable, bool may_hash);

  struct Name {
    std::string name;  // empty: there is no such user or group
    std::chrono::steady_clock::time_point looked_up;
  };
  using NameCache = std::unordered_map<unsigned /*uid or gid*/, Name>;
  // The name of `id` from `known` while younger than kNameLifetime, else from `look_up`.
  std::string KnownName(NameCache& known, unsigned id, std::string (*look_up)(unsigned));

  // A process attested less than kNameLifetime ago, and the selectors it was given. A process
  // calls many times (a call per SVID fetch, many streams), and reading /proc anew for each
  // cost more than the rest of the call (scenario 1 of the bench: the p50 of 32 clients at
  // once went from 2.9 to 1.2–2.0 times its ceiling). Reused only while the same process — its
  // /proc directory, held open, names it and no other even after its pid is reused — runs the
  // same binary file, stat'ed again on every call; its uid, gid and groups are the
  // connection's, part of the key. After kNameLifetime it is attested anew, so names are as
  // fresh as they would be.
  using CallerKey = std::tuple<pid_t, uid_t, gid_t, std::vector<gid_t>>;
  struct Recent {
    std::shared_ptr<const transport::PeerProcess> pin;
    ExecutableKey executable;
    std::vector<Selector> selectors;
    std::chrono::steady_clock::time_point attested_at;
    // Other connections' holds found there while `pin` was: both then held one process (a
    // process never comes back), so a call on one of them needs no signal asking whether `pin`
    // is still there. A workload with many connections otherwise paid that syscall per call.
    std::vector<std::weak_ptr<const transport::PeerProcess>> holds_of_pin_process;
  };
  static constexpr size_t kMaxHoldsOfOneProcess = 256;
  std::optional<std::vector<Selector>> Reuse(const CallerKey& caller,
                                             const std::shared_ptr<const transport::PeerProcess>& connected,
                                             const std::optional<ExecutableKey>& binary_now);
  void NoteHoldOfPinProcess(const CallerKey& caller, const std::shared_ptr<const transport::PeerProcess>& pin,
                            const std::shared_ptr<const transport::PeerProcess>& connected);
  void Remember(CallerKey caller, Recent recent);
  void ForgetExpired(std::chrono::steady_clock::time_point now);  // with mutex_ held

  mutable std::mutex mutex_;
  std::map<CallerKey, Recent> recent_;
  std::chrono::steady_clock::time_point next_forget_;
  std::map<ExecutableKey, std::string> sha256_cache_;  // hashing a binary is costly
  NameCache user_names_;
  NameCache group_names_;
};

}  // namespace sigil::agentd
