#include "agentd/sync/svid_store.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "hw/durable_file.h"
#include "core/base64url.h"
#include "core/file.h"
#include "core/log.h"
#include "core/trust_bundle.h"
#include "core/wire/convert.h"
#include "core/x509_ca.h"
#include "core/x509_svid.h"

namespace sigil::agentd {

namespace {

constexpr char kEntryBlock[] = "SIGIL REGISTRATION ENTRY";
constexpr char kIssuedForBlock[] = "SIGIL ISSUED FOR ENTRY";
constexpr char kCertificateBlock[] = "CERTIFICATE";
constexpr char kKeyBlock[] = "PRIVATE KEY";
constexpr char kSuffix[] = ".pem";
constexpr char kBundleFile[] = "trust_bundle.jwks";
constexpr char kFederatedFile[] = "federated_bundles.json";

Status AppendPem(std::string& out, const char* name, std::span<const uint8_t> der) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio(bio.get(), name, "", der.data(), static_cast<long>(der.size())) <= 0) {
    return OpenSSLError(Code::kInternal, std::string("encoding a PEM ") + name + " block");
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  out.append(data, static_cast<size_t>(size));
  return Status::Ok();
}

Bytes EntryBytes(const RegistrationEntry& entry) {
  flatbuffers::FlatBufferBuilder builder(512);
  builder.Finish(wire::BuildEntry(builder, entry));
  return Bytes(builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize());
}

Result<std::shared_ptr<const RegistrationEntry>> EntryFromBytes(const Bytes& bytes) {
  flatbuffers::Verifier verifier(bytes.data(), bytes.size());
  if (!verifier.VerifyBuffer<wire::Entry>(nullptr)) return InvalidArgumentError("the entry does not verify");
  return std::make_shared<const RegistrationEntry>(wire::EntryFromWire(flatbuffers::GetRoot<wire::Entry>(bytes.data())));
}

// The PEM blocks of `text` by name, in order.
Result<std::vector<std::pair<std::string, Bytes>>> PemBlocks(const std::string& text) {
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) return OpenSSLError(Code::kInternal, "allocating a PEM buffer");
  std::vector<std::pair<std::string, Bytes>> blocks;
  while (true) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long size = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &size) != 1) break;
    blocks.emplace_back(name, Bytes(data, data + size));
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_clear_free(data, static_cast<size_t>(size));
  }
  const unsigned long err = ERR_peek_last_error();
  ClearOpenSSLErrors();
  if (err != 0 && !(ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE)) {
    return InvalidArgumentError("PEM block " + std::to_string(blocks.size() + 1) + " does not parse");
  }
  return blocks;
}

}  // namespace

std::filesystem::path SvidStore::FileOf(const std::string& entry_id) const {
  return dir_ / (HexEncode(Sha256(AsBytes(entry_id))) + kSuffix);
}

// ---- reading ----

SvidStore::Loaded SvidStore::Load(Clock::time_point now) {
  Loaded loaded;
  std::error_code error;
  std::vector<std::filesystem::path> unusable;
  for (const auto& file : std::filesystem::directory_iterator(dir_, error)) {
    const auto& path = file.path();
    if (path.filename() == kBundleFile || path.filename() == kFederatedFile) continue;
    if (path.extension() != kSuffix) {  // a write cut short, or nothing of the agent's
      unusable.push_back(path);
      continue;
    }
    auto cached = Read(path, now);
    if (cached.ok() && FileOf(cached->entry->id) != path) cached = InvalidArgumentError("named for another entry");
    if (!cached.ok()) {
      if (cached.status().code() != Code::kOutOfRange) {
        LogWarn("a kept workload SVID cannot be used; removing it",
                {{"file", path.string()}, {"error", cached.status().ToString()}});
      }
      unusable.push_back(path);
      continue;
    }
    written_.emplace(cached->entry->id, Written{cached->entry, cached->svid});
    loaded.entries.push_back(std::move(*cached));
  }
  if (error) LogWarn("could not read the kept workload SVIDs", {{"dir", dir_.string()}, {"error", error.message()}});
  if (Status removed = hw::RemoveFilesDurably(dir_, unusable); !removed.ok()) {
    LogWarn("could not remove unusable workload SVID files", {{"error", removed.ToString()}});
  }
  if (auto jwks = ReadWholeFile(dir_ / kBundleFile, "kept trust bundle"); jwks.ok()) {
    auto bundle = TrustBundleFromJwks(trust_domain_, *jwks);
    if (bundle.ok()) written_bundle_ = loaded.bundle = std::make_shared<const TrustBundle>(std::move(*bundle));
  }
  if (auto federated = ReadFederatedBundles(); federated.ok()) {
    for (const auto& [name, bundle] : *federated) written_federated_.emplace(name, nullptr);
    loaded.federated_bundles = std::move(*federated);
  } else if (federated.status().code() != Code::kNotFound) {
    const std::filesystem::path file = dir_ / kFederatedFile;
    LogWarn("the kept federated bundles cannot be used; removing them, serverd sends them again when it answers",
            {{"file", file.string()}, {"error", federated.status().ToString()}});
    if (Status removed = hw::RemoveFilesDurably(dir_, std::span(&file, 1)); !removed.ok()) {
      LogWarn("could not remove the kept federated bundles", {{"error", removed.ToString()}});
    }
  }
  return loaded;
}

Result<SvidCache::CachedEntry> SvidStore::Read(const std::filesystem::path& path, Clock::time_point now) const {
  SIGIL_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path, "workload SVID file"));
  auto blocks = PemBlocks(text);
  OPENSSL_cleanse(text.data(), text.size());
  if (!blocks.ok()) return blocks.status();
  std::shared_ptr<const RegistrationEntry> entry;
  std::shared_ptr<const RegistrationEntry> issued_for;
  auto svid = std::make_shared<WorkloadX509Svid>();
  std::vector<X509Ptr> chain;
  for (auto& [name, der] : *blocks) {
    if (name == kEntryBlock) {
      SIGIL_ASSIGN_OR_RETURN(entry, EntryFromBytes(der));
    } else if (name == kIssuedForBlock) {
      SIGIL_ASSIGN_OR_RETURN(issued_for, EntryFromBytes(der));
    } else if (name == kCertificateBlock) {
      SIGIL_ASSIGN_OR_RETURN(X509Ptr cert, CertFromDer(der));
      chain.push_back(std::move(cert));
      svid->chain_der.insert(svid->chain_der.end(), der.begin(), der.end());
    } else if (name == kKeyBlock) {
      svid->key_pkcs8_der = std::move(der);
    }
  }
  if (!entry || chain.empty() || svid->key_pkcs8_der.empty()) {
    return InvalidArgumentError("an entry, a certificate and a key are needed");
  }
  SIGIL_RETURN_IF_ERROR(entry->Validate(trust_domain_));
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, PrivateKeyFromDer(svid->key_pkcs8_der));
  if (X509_check_private_key(chain.front().get(), key.get()) != 1) {
    ClearOpenSSLErrors();
    return Status(Code::kDataLoss, "the key is not the certificate's");
  }
  svid->issued_for = issued_for ? issued_for : entry;
  SIGIL_ASSIGN_OR_RETURN(SpiffeId id, X509SvidSpiffeId(chain.front().get()));
  if (id.str() != svid->spiffe_id() || !id.MemberOf(trust_domain_)) {
    return InvalidArgumentError("the certificate is for " + id.str() + ", the entry for " + svid->spiffe_id());
  }
  SIGIL_ASSIGN_OR_RETURN(std::vector<CertValidity> validity, CertValiditiesFromDer(svid->chain_der));
  svid->not_before = validity.front().not_before;
  svid->not_after = validity.front().not_after;
  if (svid->not_after <= now) return Status(Code::kOutOfRange, "expired");
  SIGIL_ASSIGN_OR_RETURN(svid->issuing_authority_ids, IssuingAuthorityIds(svid->chain_der));
  return SvidCache::CachedEntry{std::move(entry), std::move(svid)};
}

Result<std::map<std::string, TrustBundle>> SvidStore::ReadFederatedBundles() const {
  SIGIL_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(dir_ / kFederatedFile, "kept federated bundles"));
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgumentError("the file is not valid JSON");
  if (!doc.is_object()) return InvalidArgumentError("the file is not a JSON object");
  std::map<std::string, TrustBundle> bundles;
  for (const auto& [id, jwks] : doc.items()) {
    auto td = TrustDomain::Parse(id);
    if (!td.ok()) return InvalidArgumentError("\"" + id + "\": " + td.status().message());
    if (*td == trust_domain_) return InvalidArgumentError("\"" + id + "\" is the agent's own trust domain");
    auto bundle = TrustBundleFromJwks(*td, jwks.dump());
    if (!bundle.ok()) return InvalidArgumentError("the bundle of " + id + ": " + bundle.status().message());
    bundles.insert_or_assign(td->name(), std::move(*bundle));
  }
  return bundles;
}

// ---- writing ----

Status SvidStore::Write(const SvidCache::CachedEntry& cached) const {
  const WorkloadX509Svid& svid = *cached.svid;
  std::string text;
  SIGIL_RETURN_IF_ERROR(AppendPem(text, kEntryBlock, EntryBytes(*cached.entry)));
  const RegistrationEntry& issued_for = *svid.issued_for;
  if (issued_for.spiffe_id != cached.entry->spiffe_id || issued_for.dns_names != cached.entry->dns_names ||
      issued_for.x509_svid_ttl != cached.entry->x509_svid_ttl) {
    SIGIL_RETURN_IF_ERROR(AppendPem(text, kIssuedForBlock, EntryBytes(issued_for)));
  }
  std::span<const uint8_t> rest(svid.chain_der);
  while (!rest.empty()) {
    const unsigned char* p = rest.data();
    X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(rest.size())));
    if (!cert) return OpenSSLError(Code::kInternal, "re-reading a cached certificate");
    const size_t length = static_cast<size_t>(p - rest.data());
    SIGIL_RETURN_IF_ERROR(AppendPem(text, kCertificateBlock, rest.first(length)));
    rest = rest.subspan(length);
  }
  SIGIL_RETURN_IF_ERROR(AppendPem(text, kKeyBlock, svid.key_pkcs8_der));
  Status written = hw::WriteFileDurably(FileOf(cached.entry->id), AsBytes(text), 0600, "workload SVID file");
  OPENSSL_cleanse(text.data(), text.size());
  return written;
}

Status SvidStore::SaveBundle(const std::shared_ptr<const TrustBundle>& bundle) {
  if (!bundle || bundle == written_bundle_) return Status::Ok();
  SIGIL_ASSIGN_OR_RETURN(std::string jwks, TrustBundleToJwks(*bundle));
  SIGIL_RETURN_IF_ERROR(hw::WriteFileDurably(dir_ / kBundleFile, AsBytes(jwks), 0600, "kept trust bundle"));
  written_bundle_ = bundle;
  return Status::Ok();
}

Status SvidStore::SaveFederatedBundles(const FederatedBundles& bundles) {
  // The cache makes new bundle objects only when their contents change, so the same objects
  // mean the file holds them already: a sync that changes nothing writes nothing.
  if (bundles == written_federated_) return Status::Ok();
  const std::filesystem::path file = dir_ / kFederatedFile;
  if (bundles.empty()) {
    SIGIL_RETURN_IF_ERROR(hw::RemoveFilesDurably(dir_, std::span(&file, 1)));
  } else {
    nlohmann::json doc = nlohmann::json::object();
    for (const auto& [name, bundle] : bundles) {
      SIGIL_ASSIGN_OR_RETURN(std::string jwks, TrustBundleToJwks(*bundle));
      doc[bundle->trust_domain().IdString()] = nlohmann::json::parse(jwks, nullptr, /*allow_exceptions=*/false);
    }
    const std::string text = doc.dump(2) + "\n";
    SIGIL_RETURN_IF_ERROR(hw::WriteFileDurably(file, AsBytes(text), 0600, "kept federated bundles"));
  }
  written_federated_ = bundles;
  return Status::Ok();
}

Status SvidStore::Save(const SvidCache::Snapshot& snapshot, WakeSignal* stop) {
  const SvidCache::EntryMap& entries = *snapshot.entries;
  std::vector<std::filesystem::path> gone;
  std::vector<std::string> gone_ids;
  for (const auto& [id, written] : written_) {
    auto it = entries.find(id);
    if (it == entries.end() || !it->second.svid) {
      gone.push_back(FileOf(written.entry->id));
      gone_ids.emplace_back(id);
    }
  }
  SIGIL_RETURN_IF_ERROR(hw::RemoveFilesDurably(dir_, gone));
  for (const auto& id : gone_ids) written_.erase(id);
  SIGIL_RETURN_IF_ERROR(SaveBundle(snapshot.bundle));
  SIGIL_RETURN_IF_ERROR(SaveFederatedBundles(snapshot.federated_bundles));
  for (const auto& [id, cached] : entries) {
    if (!cached.svid) continue;
    auto it = written_.find(cached.entry->id);
    if (it != written_.end() && it->second.entry == cached.entry && it->second.svid == cached.svid) continue;
    if (stop != nullptr && stop->stopping()) return Status::Ok();
    SIGIL_RETURN_IF_ERROR(Write(cached));
    // Erased first: the key views the id inside the entry it replaces.
    if (it != written_.end()) written_.erase(it);
    written_.emplace(cached.entry->id, Written{cached.entry, cached.svid});
  }
  return Status::Ok();
}

Status SvidStore::Clear() {
  std::error_code error;
  std::vector<std::filesystem::path> files;
  for (const auto& file : std::filesystem::directory_iterator(dir_, error)) files.push_back(file.path());
  if (error) return Status(Code::kInternal, "listing " + dir_.string() + ": " + error.message());
  written_.clear();
  written_bundle_.reset();
  written_federated_.clear();
  return hw::RemoveFilesDurably(dir_, files);
}

void SvidStore::Run(SvidCache* cache, WakeSignal* changed, BackoffPolicy retry) {
  Backoff backoff(retry);
  FailureLog failures(LogLevel::kWarn, "could not keep the workload SVIDs in data_dir; retrying", retry.ceiling);
  while (true) {
    const uint64_t seen = changed->Wakeups();
    auto wake_at = std::chrono::steady_clock::now() + std::chrono::hours(1);
    if (Status saved = Save(*cache->snapshot(), changed); saved.ok()) {
      backoff.Reset();
      failures.Succeeded("keeping the workload SVIDs in data_dir recovered");
    } else {
      failures.Failed({{"error", saved.ToString()}});
      wake_at = std::chrono::steady_clock::now() + backoff.Next();
    }
    if (!changed->SleepUntil(wake_at, seen)) return;
  }
}

}  // namespace sigil::agentd
