// The agent's own identity: its X509-SVID and key, with which it talks mTLS to serverd, and the
// trust bundle it checks serverd against.
//
//  - Establish: the SVID saved in data_dir by an earlier run when it is still usable, so a
//    restart needs no new join token; otherwise node attestation with the attestor config
//    chooses (attestor/node_attestor.h).
//  - Renew: a new key and CSR over mTLS, at half of the SVID's lifetime (renew_at).
//  - Reattest: when serverd no longer knows the agent (evicted), attest again, backing off
//    while attestation fails.
//  - Persistence: the SVID chain and its key in one file (agent_identity.pem, 0600), replaced
//    whole by one rename (durable_file.h), and the trust bundle (bundle.pem), in data_dir;
//    every read and write of those files is in ReadSavedSvid, SaveSvid, LoadTrustBundle and
//    SaveTrustBundle. The two files earlier versions wrote (agent_svid.pem, agent_svid.key) are
//    read when agent_identity.pem is missing and moved into it.
//  - A saved key that does not match its certificate (an earlier version stopped between its
//    two renames) is named in the log; the agent attests again, and when it cannot (a join
//    token attests once) start-up fails with a message naming the files and the fix.
//
// Thread safety: renew_at and id from any thread. Establish before the sync threads start;
// then Renew and Reattest from those threads (one attestation at a time). Every method blocks
// on serverd or the disk: never call one on an event loop.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agentd/agent_config.h"
#include "agentd/sync/retry.h"
#include "agentd/sync/server_client.h"
#include "agentd/sync/svid_cache.h"
#include "core/openssl_util.h"
#include "core/spiffe_id.h"

namespace sigil::agentd {

// The mutual-TLS credentials of an agent SVID: its chain (leaf first, DER) and its key.
Result<std::shared_ptr<const transport::TlsCredentials>> CredentialsOf(const std::vector<Bytes>& chain_der,
                                                                       EVP_PKEY* key);

class AgentSvid {
 public:
  AgentSvid(const AgentConfig& config, ServerClient* server);

  // The bundle saved by an earlier run (newer: it follows rotations), else trust_bundle_path,
  // handed to the server client and returned. Nothing when neither exists (insecure bootstrap).
  Result<std::optional<X509Bundle>> LoadTrustBundle();
  Status SaveTrustBundle(const TrustBundle& bundle);

  enum class Established { kRestored, kAttested };
  // The saved SVID when usable, else attestation.
  Result<Established> Establish();
  Status Renew();
  // Logs why and attests again; a failure is logged, and the SVIDs cached meanwhile are served.
  // Calls while another is attesting, or before the back-off after a failed one has passed,
  // return at once: entry sync and rotation both call it when serverd refuses the agent.
  void Reattest(const Status& why);

  Clock::time_point renew_at() const;
  // Makes the SVID due for renewal now when one of `tainted` (X.509 authority IDs) issued it.
  // Returns whether it did.
  bool RenewNowIfIssuedBy(const std::set<std::string, std::less<>>& tainted);
  // The agent's SPIFFE ID, for logs.
  std::string id() const;

 private:
  struct Held {
    SpiffeId id;
    std::vector<Bytes> chain_der;
    EvpPkeyPtr key;
    Clock::time_point renew_at;
    Clock::time_point expires_at;
  };
  // From serverd's answer for `key`: renewal at half of the leaf's lifetime.
  static Result<Held> FromAnswer(AgentSvidAnswer answer, EvpPkeyPtr key);

  struct Saved {
    Held svid;
    bool in_old_layout = false;  // agent_svid.pem and agent_svid.key
  };

  Status Attest();
  Result<Saved> ReadSavedSvid() const;
  // DataLoss `mismatch` when the key is not the leaf's.
  Result<Held> ParseSavedSvid(std::string_view chain_pem, std::string_view key_pem, const std::string& mismatch) const;
  Status SaveSvid(const Held& svid) const;
  // Removes the old layout's files once agent_identity.pem holds the SVID.
  Status RemoveOldLayout() const;
  // Hands the SVID to the server client for mTLS and keeps it; saved first when `persist`.
  Status Use(Held svid, bool persist);

  const AgentConfig& config_;
  ServerClient* server_;
  mutable std::mutex mutex_;  // guards held_
  std::unique_ptr<Held> held_;
  std::mutex attest_mutex_;  // one attestation at a time

  std::mutex reattest_mutex_;  // guards what follows; held while re-attesting
  Backoff reattest_backoff_;
  std::chrono::steady_clock::time_point next_reattest_at_{};
  bool reattesting_ = false;  // a failed re-attestation since the last success
  FailureLog reattest_failures_;
};

}  // namespace sigil::agentd
