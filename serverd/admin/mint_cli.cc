// `serverd x509 mint` and `serverd jwt mint`, with the flags and output of SPIRE's; -output
// json prints what `spire-server x509 mint|jwt mint -output json` prints.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <tuple>

#include "core/base64url.h"
#include "core/csr.h"
#include "core/jwt_svid.h"
#include "core/trust_bundle.h"
#include "hw/soft_key_store.h"
#include "serverd/admin/cli_flags.h"
#include "serverd/admin/entry_json.h"

namespace sigil::serverd {
namespace {

using nlohmann::json;

struct MintFlags {
  std::string spiffe_id, write_dir;
  int64_t ttl = 0;
  std::vector<std::string> dns, audience;
};

// The DER certificates of a PEM text, each in standard base64, as Go's JSON writes []byte.
Result<json> CertsBase64(const std::string& pem) {
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, CertsFromPem(pem));
  json out = json::array();
  for (const X509Ptr& cert : certs) {
    SIGIL_ASSIGN_OR_RETURN(Bytes der, CertToDer(cert.get()));
    out.push_back(Base64Encode(der));
  }
  return out;
}

Status WriteMinted(const std::string& write_dir, const std::string& svid_pem,
                   const std::string& key_pem, const std::string& bundle_pem, std::ostream& out) {
  const std::filesystem::path dir(write_dir);
  for (const auto& [name, label, text, mode] :
       {std::tuple<const char*, const char*, const std::string&, mode_t>{"svid.pem", "X509-SVID",
                                                                         svid_pem, 0644},
        {"key.pem", "Private key", key_pem, 0600},
        {"bundle.pem", "Root CAs", bundle_pem, 0644}}) {
    const std::filesystem::path path = dir / name;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      if (fd >= 0) ::close(fd);
      return Status(Code::kPermissionDenied, "cannot write " + path.string());
    }
    ::close(fd);
    out << label << " written to " << path.string() << "\n";
  }
  return Status::Ok();
}

// As `spire-server x509 mint`: the key is made here and never leaves this process but for
// the files it writes or what it prints; the server sees only a CSR.
Status MintX509(AdminClient& client, const MintFlags& flags, const CommonFlags& common,
                std::ostream& out) {
  SIGIL_RETURN_IF_ERROR(SpiffeIdFlag("-spiffeID", flags.spiffe_id).status());
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, hw::GenerateSoftKey(KeyType::kEcP256));
  SIGIL_ASSIGN_OR_RETURN(Bytes csr, MakeCsr(key.get()));
  json body{{"csr", Base64Encode(csr)}, {"spiffe_id", flags.spiffe_id}, {"dns", flags.dns}};
  if (flags.ttl > 0) body["ttl"] = flags.ttl;
  SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/svid/MintX509SVID", body));
  const std::string svid_pem = response.value("svid_pem", "");
  const std::string bundle_pem = response.value("bundle_pem", "");
  if (!flags.write_dir.empty()) {
    SIGIL_ASSIGN_OR_RETURN(std::string key_pem, PrivateKeyToPkcs8Pem(key.get()));
    return WriteMinted(flags.write_dir, svid_pem, key_pem, bundle_pem, out);
  }
  if (common.output == "json") {
    SIGIL_ASSIGN_OR_RETURN(Bytes key_der, PrivateKeyToPkcs8Der(key.get()));
    SIGIL_ASSIGN_OR_RETURN(json svid, CertsBase64(svid_pem));
    SIGIL_ASSIGN_OR_RETURN(json roots, CertsBase64(bundle_pem));
    out << json{{"x509_svid", svid}, {"private_key", Base64Encode(key_der)}, {"root_cas", roots}}
               .dump()
        << "\n";
    return Status::Ok();
  }
  SIGIL_ASSIGN_OR_RETURN(std::string key_pem, PrivateKeyToPkcs8Pem(key.get()));
  out << "X509-SVID:\n"
      << svid_pem << "\nPrivate key:\n"
      << key_pem << "\nRoot CAs:\n"
      << bundle_pem;
  return Status::Ok();
}

// SPIRE's MintJWTSVIDResponse: {"svid": types.JWTSVID}, its times read back from the token.
Result<json> JwtSvidJson(const std::string& token) {
  SIGIL_ASSIGN_OR_RETURN(std::string claims_text, UnverifiedJwtClaims(token));
  const json claims = json::parse(claims_text, nullptr, /*allow_exceptions=*/false);
  if (!claims.is_object())
    return Status(Code::kInternal, "the minted JWT-SVID's claims do not parse");
  auto seconds = [&](const char* claim) {
    const auto it = claims.find(claim);
    return it != claims.end() && it->is_number_integer() ? it->get<int64_t>() : int64_t{0};
  };
  return json{{"svid",
               {{"token", token},
                {"id", SpiffeIdToJson(claims.value("sub", ""))},
                {"expires_at", std::to_string(seconds("exp"))},
                {"issued_at", std::to_string(seconds("iat"))},
                {"hint", ""}}}};
}

}  // namespace

void AddMintCommands(CLI::App& app, CommonFlags& common, AdminAction& action, std::ostream& out) {
  auto flags = std::make_shared<MintFlags>();
  CLI::App* x509 = app.add_subcommand("x509", "Mint X509-SVIDs")->require_subcommand(1);
  CLI::App* x509_mint = x509->add_subcommand("mint", "Mint an X509-SVID for a new key");
  x509_mint->add_option("--spiffeID", flags->spiffe_id, "The SPIFFE ID of the SVID")->required();
  x509_mint->add_option("--ttl", flags->ttl, "TTL in seconds (default: the server's)");
  x509_mint->add_option("--dns", flags->dns, "A DNS name; repeatable");
  x509_mint->add_option("--write", flags->write_dir,
                        "Write svid.pem, key.pem and bundle.pem into this folder");
  AddCommonFlags(x509_mint, common, true);
  x509_mint->callback([&, flags] {
    action = [&, flags](AdminClient& client) -> Status {
      return MintX509(client, *flags, common, out);
    };
  });

  CLI::App* jwt = app.add_subcommand("jwt", "Mint JWT-SVIDs")->require_subcommand(1);
  CLI::App* jwt_mint = jwt->add_subcommand("mint", "Mint a JWT-SVID");
  jwt_mint->add_option("--spiffeID", flags->spiffe_id, "The SPIFFE ID of the JWT-SVID")->required();
  jwt_mint->add_option("--audience", flags->audience, "An audience; repeatable")->required();
  jwt_mint->add_option("--ttl", flags->ttl, "TTL in seconds (default: the server's)");
  AddCommonFlags(jwt_mint, common, true);
  jwt_mint->callback([&, flags] {
    action = [&, flags](AdminClient& client) -> Status {
      SIGIL_RETURN_IF_ERROR(SpiffeIdFlag("-spiffeID", flags->spiffe_id).status());
      json body{{"spiffe_id", flags->spiffe_id}, {"audience", flags->audience}};
      if (flags->ttl > 0) body["ttl"] = flags->ttl;
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/svid/MintJWTSVID", body));
      const std::string token = response.value("token", "");
      if (common.output != "json") {
        out << token << "\n";
        return Status::Ok();
      }
      SIGIL_ASSIGN_OR_RETURN(json svid, JwtSvidJson(token));
      out << svid.dump() << "\n";
      return Status::Ok();
    };
  });
}

}  // namespace sigil::serverd
