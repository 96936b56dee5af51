#include "agentd/sync/agent_svid.h"

#include "agentd/attestor/node_attestor.h"
#include "core/base64url.h"
#include "core/csr.h"
#include "core/log.h"
#include "core/x509_ca.h"
#include "core/x509_svid.h"
#include "core/file.h"
#include "hw/durable_file.h"
#include "hw/soft_key_store.h"

namespace sigil::agentd {

namespace {

// The agent's SVID chain, leaf first, and then its key, in one file: replaced whole by one
// rename, so that no crash pairs a key with another key's certificate.
constexpr char kSvidFile[] = "agent_identity.pem";
// Earlier versions kept chain and key in two files, renamed one after the other.
constexpr char kOldChainFile[] = "agent_svid.pem";
constexpr char kOldKeyFile[] = "agent_svid.key";
constexpr char kBundleFile[] = "bundle.pem";

Result<std::vector<X509Ptr>> ParseChain(const std::vector<Bytes>& ders) {
  std::vector<X509Ptr> chain;
  for (const Bytes& der : ders) {
    SIGIL_ASSIGN_OR_RETURN(X509Ptr cert, CertFromDer(der));
    chain.push_back(std::move(cert));
  }
  if (chain.empty()) return InvalidArgumentError("an SVID without certificates");
  return chain;
}

Clock::time_point HalfLife(X509* leaf) { return Midpoint(CertNotBefore(leaf), CertNotAfter(leaf)); }

// What an operator does about a saved key that does not match its SVID when attesting again
// failed.
constexpr char kMismatchFix[] =
    "This host's identity cannot be restored from data_dir. With join token attestation (a token attests "
    "once), make a new token with `serverd token generate` and start agentd with -joinToken <token>; with "
    "tpm_devid, make sure serverd is reachable and trusts the DevID. The mismatched files are replaced once "
    "the agent has attested.";

}  // namespace

Result<std::shared_ptr<const transport::TlsCredentials>> CredentialsOf(const std::vector<Bytes>& chain_der,
                                                                       EVP_PKEY* key) {
  auto credentials = std::make_shared<transport::TlsCredentials>();
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParseChain(chain_der));
  credentials->leaf = std::move(chain.front());
  for (size_t i = 1; i < chain.size(); ++i) credentials->intermediates.push_back(std::move(chain[i]));
  credentials->key = UpRef(key);
  return std::shared_ptr<const transport::TlsCredentials>(std::move(credentials));
}

AgentSvid::AgentSvid(const AgentConfig& config, ServerClient* server)
    : config_(config),
      server_(server),
      reattest_backoff_(config.retry),
      reattest_failures_(LogLevel::kError, "re-attestation failed; cached SVIDs are served until they expire",
                         config.retry.ceiling) {}

// ---- the trust bundle ----

Result<std::optional<X509Bundle>> AgentSvid::LoadTrustBundle() {
  for (const auto& [path, what] : {std::pair{config_.data_dir / kBundleFile, "saved trust bundle"},
                                  std::pair{config_.trust_bundle_path, "trust_bundle_path"}}) {
    if (path.empty()) continue;
    auto pem = ReadWholeFile(path, what);
    if (!pem.ok()) {
      if (pem.status().code() == Code::kNotFound && std::string_view(what) == "saved trust bundle") continue;
      return pem.status();
    }
    auto bundle = X509BundleFromPem(config_.trust_domain, *pem);
    if (!bundle.ok()) return std::move(bundle).status().AddContext(std::string(what) + " " + path.string());
    SIGIL_RETURN_IF_ERROR(server_->SetBundle(*bundle).AddContext(std::string(what) + " " + path.string()));
    return std::optional<X509Bundle>(std::move(*bundle));
  }
  return std::optional<X509Bundle>();
}

Status AgentSvid::SaveTrustBundle(const TrustBundle& bundle) {
  SIGIL_ASSIGN_OR_RETURN(std::string pem, X509BundleToPem(bundle.x509));
  return hw::WriteFileDurably(config_.data_dir / kBundleFile, AsBytes(pem), 0600, "trust bundle file");
}

// ---- the SVID ----

Result<AgentSvid::Held> AgentSvid::FromAnswer(AgentSvidAnswer answer, EvpPkeyPtr key) {
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParseChain(answer.chain_der));
  return Held{answer.agent_id, std::move(answer.chain_der), std::move(key), HalfLife(chain.front().get()),
              CertNotAfter(chain.front().get())};
}

Result<AgentSvid::Established> AgentSvid::Establish() {
  auto saved = ReadSavedSvid();
  Status unusable = saved.status();
  if (saved.ok()) {
    LogInfo("re-using the agent SVID kept in data_dir", {{"agent", saved->svid.id.str()}});
    // The old files stay until the new one is in place, so an upgrade never loses the identity.
    if (!saved->in_old_layout) {
      if (Status removed = RemoveOldLayout(); !removed.ok()) {
        LogWarn("could not remove the agent SVID files of an earlier version", {{"error", removed.ToString()}});
      }
    } else if (Status moved = SaveSvid(saved->svid); moved.ok()) {
      LogInfo("moved the agent SVID and its key into one file",
              {{"from", std::string(kOldChainFile) + ", " + kOldKeyFile}, {"to", kSvidFile}});
    } else {
      LogWarn("could not move the agent SVID and its key into one file; the two files stay",
              {{"error", moved.ToString()}});
    }
    unusable = Use(std::move(saved->svid), false);
    if (unusable.ok()) return Established::kRestored;
  }
  if (unusable.code() == Code::kNotFound) {
    SIGIL_RETURN_IF_ERROR(Attest());
    return Established::kAttested;
  }
  if (unusable.code() == Code::kDataLoss) {
    LogError("the saved agent key does not match the saved agent SVID; attesting again",
             {{"error", unusable.ToString()}});
  } else {
    LogWarn("the saved agent SVID cannot be used; attesting again", {{"error", unusable.ToString()}});
  }
  Status attested = Attest();
  if (attested.ok()) return Established::kAttested;
  if (unusable.code() != Code::kDataLoss) return attested;
  return FailedPreconditionError(std::string(unusable.message()) + "; attesting again failed: " +
                                 attested.ToString() + ". " + kMismatchFix);
}

Status AgentSvid::Attest() {
  std::lock_guard attesting(attest_mutex_);
  std::string type;
  auto attestor = ChooseNodeAttestor(config_, &type);
  if (!attestor.ok()) {
    return FailedPreconditionError("no saved agent SVID in " + config_.data_dir.string() + " and " +
                                   attestor.status().message());
  }
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, hw::GenerateSoftKey(KeyType::kEcP256));
  SIGIL_ASSIGN_OR_RETURN(Bytes csr, MakeCsr(key.get()));
  auto answer = (*attestor)->Attest(*server_, csr);
  if (!answer.ok()) return std::move(answer).status().AddContext(type + " attestation");
  SIGIL_RETURN_IF_ERROR(server_->SetBundle(answer->bundle.x509));
  LogInfo("attested to serverd", {{"agent", answer->agent_id.str()}, {"type", type}});
  // The attestation is spent (a join token attests once): an SVID that cannot be saved is used
  // all the same, and saved with its next renewal.
  if (Status saved = SaveTrustBundle(answer->bundle); !saved.ok()) {
    LogError("could not save the trust bundle", {{"error", saved.ToString()}});
  }
  SIGIL_ASSIGN_OR_RETURN(Held svid, FromAnswer(std::move(*answer), std::move(key)));
  if (Status saved = SaveSvid(svid); !saved.ok()) {
    LogError("could not save the agent SVID; a restart before its renewal needs a new attestation",
             {{"error", saved.ToString()}});
  }
  return Use(std::move(svid), false);
}

Status AgentSvid::Renew() {
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, hw::GenerateSoftKey(KeyType::kEcP256));
  SIGIL_ASSIGN_OR_RETURN(Bytes csr, MakeCsr(key.get()));
  SIGIL_ASSIGN_OR_RETURN(AgentSvidAnswer answer, server_->RenewAgentSvid(csr));
  SIGIL_ASSIGN_OR_RETURN(Held svid, FromAnswer(std::move(answer), std::move(key)));
  SIGIL_ASSIGN_OR_RETURN(X509Ptr leaf, CertFromDer(svid.chain_der.front()));
  LogInfo("agent SVID renewed", {{"agent", svid.id.str()}, {"serial", SerialHex(leaf.get())}});
  return Use(std::move(svid), true);
}

void AgentSvid::Reattest(const Status& why) {
  std::unique_lock attempt(reattest_mutex_, std::try_to_lock);
  if (!attempt.owns_lock()) return;  // the other loop is attesting
  if (std::chrono::steady_clock::now() < next_reattest_at_) return;
  if (!reattesting_) {
    LogError("serverd does not know this agent any more (evicted?); attesting again", {{"error", why.ToString()}});
  }
  if (Status attested = Attest(); !attested.ok()) {
    reattesting_ = true;
    next_reattest_at_ = std::chrono::steady_clock::now() + reattest_backoff_.Next();
    reattest_failures_.Failed({{"error", attested.ToString()}});
    return;
  }
  reattesting_ = false;
  reattest_backoff_.Reset();
  reattest_failures_.Succeeded("re-attested after failures");
  // The other loop may still hold a refusal made with the old credentials.
  next_reattest_at_ = std::chrono::steady_clock::now() + config_.retry.initial;
}

Status AgentSvid::Use(Held svid, bool persist) {
  if (persist) SIGIL_RETURN_IF_ERROR(SaveSvid(svid));
  SIGIL_ASSIGN_OR_RETURN(auto credentials, CredentialsOf(svid.chain_der, svid.key.get()));
  SIGIL_RETURN_IF_ERROR(server_->SetAgentCredentials(std::move(credentials)));
  std::lock_guard lock(mutex_);
  held_ = std::make_unique<Held>(std::move(svid));
  return Status::Ok();
}

Clock::time_point AgentSvid::renew_at() const {
  std::lock_guard lock(mutex_);
  return held_ ? held_->renew_at : Clock::time_point::min();
}

bool AgentSvid::RenewNowIfIssuedBy(const std::set<std::string, std::less<>>& tainted) {
  if (tainted.empty()) return false;
  std::lock_guard lock(mutex_);
  if (!held_) return false;
  for (const Bytes& der : held_->chain_der) {
    auto issuers = IssuingAuthorityIds(der);
    if (!issuers.ok()) continue;
    for (const std::string& issuer : *issuers) {
      if (!tainted.contains(issuer)) continue;
      held_->renew_at = Clock::now();
      return true;
    }
  }
  return false;
}

std::string AgentSvid::id() const {
  std::lock_guard lock(mutex_);
  return held_ ? held_->id.str() : std::string();
}

// ---- the SVID's files ----

Result<AgentSvid::Saved> AgentSvid::ReadSavedSvid() const {
  const auto path = config_.data_dir / kSvidFile;
  auto text = ReadWholeFile(path, "agent SVID file");
  if (text.ok()) {
    const size_t key_at = text->find("-----BEGIN PRIVATE KEY-----");
    if (key_at == std::string::npos) return Status(Code::kDataLoss, path.string() + " holds no key");
    const std::string_view contents(*text);
    auto svid = ParseSavedSvid(contents.substr(0, key_at), contents.substr(key_at),
                               "the key in " + path.string() + " does not match the agent SVID in it");
    OPENSSL_cleanse(text->data(), text->size());
    if (!svid.ok()) return std::move(svid).status();
    return Saved{std::move(*svid), false};
  }
  if (text.status().code() != Code::kNotFound) return text.status();

  const auto chain_path = config_.data_dir / kOldChainFile;
  const auto key_path = config_.data_dir / kOldKeyFile;
  auto chain_pem = ReadWholeFile(chain_path, "agent SVID");
  auto key_pem = ReadWholeFile(key_path, "agent key");
  if (!chain_pem.ok() && !key_pem.ok() && chain_pem.status().code() == Code::kNotFound &&
      key_pem.status().code() == Code::kNotFound) {
    return NotFoundError("no saved agent SVID in " + config_.data_dir.string());
  }
  if (!chain_pem.ok() || !key_pem.ok()) {
    const Status& missing = chain_pem.ok() ? key_pem.status() : chain_pem.status();
    if (missing.code() != Code::kNotFound) return missing;
    return Status(Code::kDataLoss, "of the agent SVID's two files only one is left: " + std::string(missing.message()));
  }
  auto svid = ParseSavedSvid(*chain_pem, *key_pem,
                             "the agent key in " + key_path.string() + " does not match the agent SVID in " +
                                 chain_path.string() + " (an earlier agentd was stopped between writing the two)");
  OPENSSL_cleanse(key_pem->data(), key_pem->size());
  if (!svid.ok()) return std::move(svid).status();
  return Saved{std::move(*svid), true};
}

Result<AgentSvid::Held> AgentSvid::ParseSavedSvid(std::string_view chain_pem, std::string_view key_pem,
                                                  const std::string& mismatch) const {
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, CertsFromPem(chain_pem));
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, PrivateKeyFromPem(key_pem));
  X509* leaf = chain.front().get();
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ClearOpenSSLErrors();
    return Status(Code::kDataLoss, mismatch);
  }
  if (CertNotAfter(leaf) <= Clock::now()) return FailedPreconditionError("the saved agent SVID has expired");
  SIGIL_ASSIGN_OR_RETURN(SpiffeId id, X509SvidSpiffeId(leaf));
  if (!id.MemberOf(config_.trust_domain)) {
    return FailedPreconditionError("the saved agent SVID is for " + id.str() + ", not trust domain " +
                                   config_.trust_domain.name());
  }
  Held svid{id, {}, std::move(key), HalfLife(leaf), CertNotAfter(leaf)};
  for (const auto& cert : chain) {
    SIGIL_ASSIGN_OR_RETURN(Bytes der, CertToDer(cert.get()));
    svid.chain_der.push_back(std::move(der));
  }
  return svid;
}

Status AgentSvid::SaveSvid(const Held& svid) const {
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParseChain(svid.chain_der));
  std::vector<X509*> raw;
  for (const auto& cert : chain) raw.push_back(cert.get());
  SIGIL_ASSIGN_OR_RETURN(std::string contents, CertsToPem(raw));
  SIGIL_ASSIGN_OR_RETURN(std::string key_pem, PrivateKeyToPkcs8Pem(svid.key.get()));
  contents += key_pem;
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  Status written = hw::WriteFileDurably(config_.data_dir / kSvidFile, AsBytes(contents), 0600, "agent SVID file",
                                    "agent-svid");
  OPENSSL_cleanse(contents.data(), contents.size());
  SIGIL_RETURN_IF_ERROR(written);
  return RemoveOldLayout();
}

Status AgentSvid::RemoveOldLayout() const {
  const std::filesystem::path old_files[] = {config_.data_dir / kOldKeyFile, config_.data_dir / kOldChainFile};
  return hw::RemoveFilesDurably(config_.data_dir, old_files);
}

}  // namespace sigil::agentd
