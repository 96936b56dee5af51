// `serverd bundle show|list|set|delete|count`, with the flags and output of
// `spire-server bundle`; -output json prints SPIRE's types.Bundle.
#include <algorithm>
#include <cctype>
#include <memory>

#include "core/base64url.h"
#include "core/openssl_util.h"
#include "core/trust_bundle.h"
#include "core/x509_ca.h"
#include "serverd/admin/cli_flags.h"

namespace sigil::serverd {
namespace {

using nlohmann::json;

// SPIRE's types.Bundle, as its CLI prints it (protobuf's JSON: bytes in standard base64, int64s
// as strings, every field present).
Result<json> BundleToJson(const TrustBundle& bundle) {
  json x509 = json::array();
  for (const X509Ptr& cert : bundle.x509.authorities) {
    SIGIL_ASSIGN_OR_RETURN(Bytes der, CertToDer(cert.get()));
    x509.push_back({{"asn1", Base64Encode(der)},
                    {"tainted", bundle.tainted_x509_authorities.contains(X509AuthorityId(cert.get()))}});
  }
  json jwt = json::array();
  for (const auto& [key_id, authority] : bundle.jwt.authorities) {
    SIGIL_ASSIGN_OR_RETURN(Bytes der, PublicKeyToDer(authority.public_key.get()));
    const int64_t expires_at = authority.expires_at
                                   ? std::chrono::duration_cast<std::chrono::seconds>(
                                         authority.expires_at->time_since_epoch())
                                         .count()
                                   : 0;
    jwt.push_back({{"public_key", Base64Encode(der)},
                   {"key_id", key_id},
                   {"expires_at", std::to_string(expires_at)},
                   {"tainted", bundle.tainted_jwt_authorities.contains(key_id)}});
  }
  return json{{"trust_domain", bundle.trust_domain().name()},
              {"x509_authorities", x509},
              {"jwt_authorities", jwt},
              {"refresh_hint", std::to_string(bundle.refresh_hint.count())},
              {"sequence_number", std::to_string(bundle.sequence)}};
}

// A bundle of the admin API ({"trust_domain", "jwks"}, and for the own one the IDs of the
// tainted authorities) as types.Bundle.
Result<json> BundleJsonOf(const json& item) {
  SIGIL_ASSIGN_OR_RETURN(TrustDomain td, TrustDomain::Parse(item.value("trust_domain", "")));
  SIGIL_ASSIGN_OR_RETURN(TrustBundle bundle, TrustBundleFromJwks(td, item.value("jwks", "")));
  for (auto [member, ids] : {std::pair{"tainted_x509_authorities", &bundle.tainted_x509_authorities},
                             std::pair{"tainted_jwt_authorities", &bundle.tainted_jwt_authorities}}) {
    const auto list = item.find(member);
    if (list == item.end() || !list->is_array()) continue;
    for (const json& id : *list) {
      if (id.is_string()) ids->insert(id.get<std::string>());
    }
  }
  return BundleToJson(bundle);
}

struct BundleFlags {
  std::string format = "pem";
  std::string id;
  std::string path;
  std::string delete_mode = "restrict";
};

void AddFormatFlag(CLI::App* command, BundleFlags& flags) {
  command->add_option("--format", flags.format, "pem or spiffe (with -output pretty)")
      ->check(CLI::IsMember({"pem", "spiffe"}));
}

void AddShowAndCount(CLI::App* bundle, const std::shared_ptr<BundleFlags>& flags,
                     CommonFlags& common, AdminAction& action, std::ostream& out) {
  CLI::App* show = bundle->add_subcommand("show", "Print this trust domain's bundle");
  AddFormatFlag(show, *flags);
  AddCommonFlags(show, common, true);
  show->callback([&, flags] {
    action = [&, flags](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/bundle/GetBundle", json::object()));
      if (common.output == "json") {
        SIGIL_ASSIGN_OR_RETURN(json bundle, BundleJsonOf(response));
        out << bundle.dump() << "\n";
      } else {
        out << (flags->format == "spiffe" ? response.value("jwks", "") + "\n"
                                          : response.value("pem", ""));
      }
      return Status::Ok();
    };
  });

  CLI::App* count =
      bundle->add_subcommand("count", "Count bundles: this trust domain's and the federated ones");
  AddCommonFlags(count, common, true);
  count->callback([&] {
    action = [&](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/bundle/CountBundles", json::object()));
      if (common.output == "json") {
        out << response.dump() << "\n";
      } else {
        const int64_t n = response.value("count", 0);
        out << n << (n == 1 ? " bundle" : " bundles") << "\n";
      }
      return Status::Ok();
    };
  });
}

void AddList(CLI::App* bundle, const std::shared_ptr<BundleFlags>& flags, CommonFlags& common,
             AdminAction& action, std::ostream& out) {
  CLI::App* list = bundle->add_subcommand("list", "List federated bundles");
  list->add_option("--id", flags->id, "Only the bundle of this trust domain");
  AddFormatFlag(list, *flags);
  AddCommonFlags(list, common, true);
  list->callback([&, flags] {
    action = [&, flags](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(json response,
                             client.Call("/v1/bundle/ListFederatedBundles", json::object()));
      json bundles = json::array();
      for (const auto& b : response["bundles"]) {
        const std::string td = b.value("trust_domain", "");
        if (!flags->id.empty() && "spiffe://" + td != flags->id && td != flags->id) continue;
        if (common.output != "json") {
          bundles.push_back(b);
          continue;
        }
        // SPIRE's types.Bundle, with Sigil's "jwks" and "pem" beside its fields.
        SIGIL_ASSIGN_OR_RETURN(json item, BundleJsonOf(b));
        item.update(b);
        bundles.push_back(std::move(item));
      }
      if (common.output == "json") {
        out << json{{"bundles", bundles}}.dump() << "\n";
        return Status::Ok();
      }
      for (const auto& b : bundles) {
        out << "****************************************\n* spiffe://"
            << b.value("trust_domain", "") << "\n****************************************\n"
            << (flags->format == "spiffe" ? b.value("jwks", "") + "\n" : b.value("pem", ""))
            << "\n";
      }
      return Status::Ok();
    };
  });
}

void AddSetAndDelete(CLI::App* bundle, const std::shared_ptr<BundleFlags>& flags,
                     CommonFlags& common, AdminAction& action, std::ostream& out) {
  CLI::App* set = bundle->add_subcommand("set", "Create or replace a federated bundle");
  set->add_option("--id", flags->id, "The trust domain the bundle belongs to")->required();
  set->add_option("--path", flags->path, "The bundle file (default: standard input)");
  AddFormatFlag(set, *flags);
  AddCommonFlags(set, common, false);
  set->callback([&, flags] {
    action = [&, flags](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(std::string text,
                             ReadInput(flags->path.empty() ? "-" : flags->path, "-path file"));
      json item{{"trust_domain", flags->id}, {flags->format == "spiffe" ? "jwks" : "pem", text}};
      SIGIL_ASSIGN_OR_RETURN(
          json response, client.Call("/v1/bundle/BatchSetFederatedBundle", {{"bundles", {item}}}));
      SIGIL_RETURN_IF_ERROR(ItemStatus(response["results"][0]["status"]));
      out << "bundle set.\n";
      return Status::Ok();
    };
  });

  CLI::App* remove = bundle->add_subcommand("delete", "Delete a federated bundle");
  remove->add_option("--id", flags->id, "The trust domain of the bundle")->required();
  remove
      ->add_option("--mode", flags->delete_mode,
                   "What happens to the entries that federate with it: restrict (refuse while "
                   "there are any), "
                   "dissociate (they stop federating with it) or delete (they are deleted)")
      ->check(CLI::IsMember({"restrict", "dissociate", "delete"}));
  AddCommonFlags(remove, common, false);
  remove->callback([&, flags] {
    action = [&, flags](AdminClient& client) -> Status {
      std::string mode = flags->delete_mode;
      std::transform(mode.begin(), mode.end(), mode.begin(),
                     [](unsigned char c) { return std::toupper(c); });
      SIGIL_ASSIGN_OR_RETURN(json response,
                             client.Call("/v1/bundle/BatchDeleteFederatedBundle",
                                         {{"trust_domains", {flags->id}}, {"mode", mode}}));
      SIGIL_RETURN_IF_ERROR(ItemStatus(response["results"][0]["status"]));
      out << "bundle deleted.\n";
      return Status::Ok();
    };
  });
}

}  // namespace

void AddBundleCommands(CLI::App& app, CommonFlags& common, AdminAction& action, std::ostream& out) {
  CLI::App* bundle =
      app.add_subcommand("bundle", "Show this trust domain's bundle and manage federated ones")
          ->require_subcommand(1);
  auto flags = std::make_shared<BundleFlags>();
  AddShowAndCount(bundle, flags, common, action, out);
  AddList(bundle, flags, common, action, out);
  AddSetAndDelete(bundle, flags, common, action, out);
}

}  // namespace sigil::serverd
