#include "agentd/sync/agent_svid.h"

#include "agentd/attestor/node_attestor.h"
#include "core/base64url.h"
#include "core/csr.h"
#include "core/log.h"
#include "core/x509_ca.h"
#include "core/x509_svid.h"
#include "core/file.h"
#include "hw/secret_file.h"
#include "hw/soft_key_store.h"

namespace sigil::agentd {

namespace {

constexpr char kChainFile[] = "agent_svid.pem";
constexpr char kKeyFile[] = "agent_svid.key";
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

Result<std::shared_ptr<const transport::TlsCredentials>> CredentialsOf(const std::vector<Bytes>& chain_der,
                                                                       EVP_PKEY* key) {
  auto credentials = std::make_shared<transport::TlsCredentials>();
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParseChain(chain_der));
  credentials->leaf = std::move(chain.front());
  for (size_t i = 1; i < chain.size(); ++i) credentials->intermediates.push_back(std::move(chain[i]));
  credentials->key = UpRef(key);
  return std::shared_ptr<const transport::TlsCredentials>(std::move(credentials));
}

Clock::time_point HalfLife(X509* leaf) { return Midpoint(CertNotBefore(leaf), CertNotAfter(leaf)); }

}  // namespace

AgentSvid::AgentSvid(const AgentConfig& config, ServerClient* server)
    : config_(config),
      server_(server),
      reattest_backoff_(config.retry),
      reattest_failures_(LogLevel::kError, "re-attestation failed; cached SVIDs are served until they expire",
                         config.retry.ceiling) {}

// ---- the trust bundle ----

Status AgentSvid::LoadTrustBundle() {
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
    return server_->SetBundle(*bundle).AddContext(std::string(what) + " " + path.string());
  }
  return Status::Ok();
}

Status AgentSvid::SaveTrustBundle(const TrustBundle& bundle) {
  SIGIL_ASSIGN_OR_RETURN(std::string pem, X509BundleToPem(bundle.x509));
  return hw::WriteSecretFile(config_.data_dir / kBundleFile, AsBytes(pem), "trust bundle file");
}

// ---- the SVID ----

Result<AgentSvid::Held> AgentSvid::FromAnswer(AgentSvidAnswer answer, EvpPkeyPtr key) {
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParseChain(answer.chain_der));
  return Held{answer.agent_id, std::move(answer.chain_der), std::move(key), HalfLife(chain.front().get()),
              CertNotAfter(chain.front().get())};
}

Status AgentSvid::Establish() {
  auto saved = ReadSavedSvid();
  if (saved.ok()) {
    LogInfo("re-using the agent SVID kept in data_dir", {{"agent", saved->id.str()}});
    Status used = Use(std::move(*saved), false);
    if (used.ok()) return used;
    saved = used;
  }
  if (saved.status().code() != Code::kNotFound) {
    LogWarn("the saved agent SVID cannot be used; attesting again", {{"error", saved.status().ToString()}});
  }
  return Attest();
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
  SIGIL_RETURN_IF_ERROR(SaveTrustBundle(answer->bundle));
  LogInfo("attested to serverd", {{"agent", answer->agent_id.str()}, {"type", type}});
  SIGIL_ASSIGN_OR_RETURN(Held svid, FromAnswer(std::move(*answer), std::move(key)));
  return Use(std::move(svid), true);
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

std::string AgentSvid::id() const {
  std::lock_guard lock(mutex_);
  return held_ ? held_->id.str() : std::string();
}

// ---- the SVID's files ----

Result<AgentSvid::Held> AgentSvid::ReadSavedSvid() const {
  SIGIL_ASSIGN_OR_RETURN(std::string chain_pem, ReadWholeFile(config_.data_dir / kChainFile, "agent SVID"));
  SIGIL_ASSIGN_OR_RETURN(std::string key_pem, ReadWholeFile(config_.data_dir / kKeyFile, "agent key"));
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, CertsFromPem(chain_pem));
  if (chain.empty()) return InvalidArgumentError(std::string(kChainFile) + " holds no certificate");
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, PrivateKeyFromPem(key_pem));
  X509* leaf = chain.front().get();
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
  SIGIL_ASSIGN_OR_RETURN(std::string chain_pem, CertsToPem(raw));
  SIGIL_ASSIGN_OR_RETURN(std::string key_pem, PrivateKeyToPkcs8Pem(svid.key.get()));
  // The key first: a crash between the two leaves a new key and an old SVID, which fails to
  // load and is replaced by attestation, never an SVID whose key is lost.
  Status written = hw::WriteSecretFile(config_.data_dir / kKeyFile, AsBytes(key_pem), "agent key file");
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  SIGIL_RETURN_IF_ERROR(written);
  return hw::WriteSecretFile(config_.data_dir / kChainFile, AsBytes(chain_pem), "agent SVID file");
}

}  // namespace sigil::agentd
