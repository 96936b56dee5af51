#include "transport/serving_certificate.h"

#include "core/file.h"

namespace sigil::transport {

ServingCertificate::ServingCertificate(ServingCertificateFiles files, std::string what, std::vector<std::string> alpn)
    : files_(std::move(files)),
      what_(std::move(what)),
      alpn_(std::move(alpn)),
      failures_(LogLevel::kWarn, "reading the " + what_ + " failed; the old one stays", std::chrono::minutes(1)) {}

Status ServingCertificate::Load() {
  SIGIL_ASSIGN_OR_RETURN(std::string chain, ReadWholeFile(files_.cert_file_path, "the " + what_));
  SIGIL_ASSIGN_OR_RETURN(std::string key, ReadWholeFile(files_.key_file_path, "the key of the " + what_));
  if (chain == chain_pem_ && key == key_pem_) return Status::Ok();
  auto credentials = TlsCredentials::FromPem(chain, key);
  if (!credentials.ok()) return credentials.status().AddContext(files_.cert_file_path.string());
  auto context = TlsContext::CreateServer({.credentials = *credentials, .alpn = alpn_});
  if (!context.ok()) return context.status().AddContext(files_.cert_file_path.string());
  source_->Set(*context);
  chain_pem_ = std::move(chain);
  key_pem_ = std::move(key);
  return Status::Ok();
}

void ServingCertificate::Reload(std::chrono::steady_clock::time_point now) {
  if (now < next_sync_) return;
  next_sync_ = now + files_.sync_interval;
  if (Status loaded = Load(); !loaded.ok()) {
    failures_.Failed({{"error", loaded.ToString()}});
  } else {
    failures_.Succeeded(what_ + " read again");
  }
}

}  // namespace sigil::transport
