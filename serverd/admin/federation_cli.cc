// `serverd federation …` with SPIRE's flags and output, and `serverd bundle history`.
#include <memory>

#include "core/file.h"
#include "core/trust_bundle.h"
#include "serverd/admin/cli_flags.h"
#include "serverd/admin/entry_json.h"

namespace sigil::serverd {
namespace {

using nlohmann::json;

struct RelationshipFlags {
  RelationshipFields fields;
  std::string bundle_path;
  std::string bundle_format = "pem";
  std::string data_path;  // -data: a file of relationships; "-" for standard input
};

void AddRelationshipFlags(CLI::App* command, RelationshipFlags& flags) {
  command->add_option("--trustDomain", flags.fields.trust_domain, "Name of the trust domain to federate with (e.g., example.org)");
  command->add_option("--bundleEndpointURL", flags.fields.bundle_endpoint_url,
                      "URL of the SPIFFE bundle endpoint that provides the trust bundle (must use the HTTPS protocol)");
  command->add_option("--bundleEndpointProfile", flags.fields.bundle_endpoint_profile,
                      "Endpoint profile type (either \"https_web\" or \"https_spiffe\")");
  command->add_option("--endpointSpiffeID", flags.fields.endpoint_spiffe_id,
                      "SPIFFE ID of the SPIFFE bundle endpoint server. Only used for 'https_spiffe' profile.");
  command->add_option("--trustDomainBundlePath", flags.bundle_path, "Path to the trust domain bundle data (optional).");
  command->add_option("--trustDomainBundleFormat", flags.bundle_format,
                      "The format of the bundle data (optional). Either \"pem\" or \"spiffe\".")
      ->check(CLI::IsMember({"pem", "spiffe"}));
  command->add_option("--data", flags.data_path,
                      "Path to a file containing federation relationships in JSON format (optional). If set to '-', "
                      "read the JSON from stdin.");
}

// The relationships to send: from -data, or from the other flags.
Result<std::vector<FederationRelationshipRequest>> RequestsFromFlags(const RelationshipFlags& flags) {
  if (!flags.data_path.empty()) {
    const RelationshipFields& f = flags.fields;
    if (!f.trust_domain.empty() || !f.bundle_endpoint_url.empty() || !f.bundle_endpoint_profile.empty() ||
        !f.endpoint_spiffe_id.empty() || !flags.bundle_path.empty()) {
      return InvalidArgumentError("cannot use other flags to specify relationship fields when 'data' flag is set");
    }
    SIGIL_ASSIGN_OR_RETURN(std::string text, ReadInput(flags.data_path, "-data file"));
    return FederationRelationshipsFromDataFile(text, InputName(flags.data_path));
  }
  FederationRelationshipRequest request{.fields = flags.fields};
  if (!flags.bundle_path.empty()) {
    SIGIL_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(flags.bundle_path, "-trustDomainBundlePath file"));
    FederatedBundleRequest bundle{.trust_domain = flags.fields.trust_domain};
    (flags.bundle_format == "spiffe" ? bundle.jwks : bundle.pem) = std::move(text);
    request.bundle = std::move(bundle);
  }
  return std::vector<FederationRelationshipRequest>{std::move(request)};
}

json RequestBody(const std::vector<FederationRelationshipRequest>& requests) {
  json items = json::array();
  for (const FederationRelationshipRequest& request : requests) {
    const RelationshipFields& f = request.fields;
    json item{{"trust_domain", f.trust_domain}, {"bundle_endpoint_url", f.bundle_endpoint_url}};
    // The server names an unknown profile; only the two known ones have a JSON shape.
    if (f.bundle_endpoint_profile == "https_web") item["https_web"] = json::object();
    if (f.bundle_endpoint_profile == "https_spiffe") item["https_spiffe"] = {{"endpoint_spiffe_id", f.endpoint_spiffe_id}};
    if (f.bundle_endpoint_profile != "https_web" && f.bundle_endpoint_profile != "https_spiffe") {
      item["bundle_endpoint_profile"] = f.bundle_endpoint_profile;
    }
    if (request.bundle) {
      item["trust_domain_bundle"] = request.bundle->jwks ? json{{"jwks", *request.bundle->jwks}}
                                                         : json{{"pem", request.bundle->pem.value_or("")}};
    }
    items.push_back(std::move(item));
  }
  return json{{"federation_relationships", items}};
}

void PrintRelationship(std::ostream& out, const json& r) {
  out << "Trust domain              : " << r.value("trust_domain", "") << "\n";
  out << "Bundle endpoint URL       : " << r.value("bundle_endpoint_url", "") << "\n";
  if (r.contains("https_web")) {
    out << "Bundle endpoint profile   : https_web\n";
  } else if (r.contains("https_spiffe")) {
    out << "Bundle endpoint profile   : https_spiffe\n";
    out << "Endpoint SPIFFE ID        : " << r["https_spiffe"].value("endpoint_spiffe_id", "") << "\n";
  }
}

// As SPIRE: each relationship done is printed; each refused goes to the error stream with why.
Status PrintResults(std::ostream& out, std::ostream& err, const json& request, const json& response, const char* verb,
                    const CommonFlags& common) {
  if (common.output == "json") out << response.dump() << "\n";
  const json& results = response["results"];
  size_t failed = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const json& status = results[i]["status"];
    const int code = status.value("code", 2);
    if (code == 0) {
      if (common.output != "json") {
        out << "\n";
        PrintRelationship(out, results[i]["federation_relationship"]);
      }
      continue;
    }
    ++failed;
    err << "\nFailed to " << verb << " the following federation relationship (code: "
              << GoCodeName(static_cast<Code>(code)) << ", msg: \"" << status.value("message", "") << "\"):\n";
    PrintRelationship(err, request["federation_relationships"][i]);
  }
  if (failed == 0) return Status::Ok();
  return InvalidArgumentError(std::string("failed to ") + verb + " one or more federation relationships");
}

std::string TrustDomainName(std::string id) {
  if (id.rfind("spiffe://", 0) == 0) id.erase(0, 9);
  return id;
}

}  // namespace

// The federation subcommands and their flags in one place, as `serverd federation -h` lists them:
// declarations, longer than a function keeps to, that read best whole.
void AddFederationCommands(CLI::App& app, CommonFlags& common, AdminAction& action, std::ostream& out,
                           std::ostream& err) {
  CLI::App* federation = app.add_subcommand("federation", "Manage federation relationships")->require_subcommand(1);
  // Owned by the commands' callbacks (and so by `app`), which outlive the parse.
  auto flags_held = std::make_shared<RelationshipFlags>();
  auto id_held = std::make_shared<std::string>();
  RelationshipFlags& flags = *flags_held;
  std::string& id = *id_held;

  for (const char* verb : {"create", "update"}) {
    const bool create = std::string(verb) == "create";
    CLI::App* command = federation->add_subcommand(
        verb, create ? "Creates a dynamic federation relationship with a foreign trust domain"
                     : "Updates a dynamic federation relationship with a foreign trust domain");
    AddRelationshipFlags(command, flags);
    AddCommonFlags(command, common, true);
    command->callback([&, create, flags_held] {
      action = [&, create, flags_held](AdminClient& client) -> Status {
        SIGIL_ASSIGN_OR_RETURN(std::vector<FederationRelationshipRequest> requests, RequestsFromFlags(flags));
        const json body = RequestBody(requests);
        SIGIL_ASSIGN_OR_RETURN(json response, client.Call(create ? "/v1/trustdomain/BatchCreateFederationRelationship"
                                                                  : "/v1/trustdomain/BatchUpdateFederationRelationship",
                                                           body));
        return PrintResults(out, err, body, response, create ? "create" : "update", common);
      };
    });
  }

  CLI::App* list = federation->add_subcommand("list", "Lists all dynamic federation relationships");
  AddCommonFlags(list, common, true);
  list->callback([&] {
    action = [&](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/trustdomain/ListFederationRelationships", json::object()));
      if (common.output == "json") {
        out << response.dump() << "\n";
        return Status::Ok();
      }
      const json& relationships = response["federation_relationships"];
      out << "Found " << relationships.size()
          << (relationships.size() == 1 ? " federation relationship" : " federation relationships") << "\n";
      for (const json& r : relationships) {
        out << "\n";
        PrintRelationship(out, r);
      }
      return Status::Ok();
    };
  });

  CLI::App* show = federation->add_subcommand("show", "Shows a dynamic federation relationship");
  show->add_option("--trustDomain", id, "The trust domain name of the federation relationship to show");
  AddCommonFlags(show, common, true);
  show->callback([&, id_held] {
    action = [&, id_held](AdminClient& client) -> Status {
      if (id.empty()) return InvalidArgumentError("a trust domain name is required");
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/trustdomain/GetFederationRelationship",
                                                         {{"trust_domain", TrustDomainName(id)}}));
      if (common.output == "json") {
        out << response.dump() << "\n";
        return Status::Ok();
      }
      out << "Found a federation relationship with trust domain " << id << ":\n\n";
      PrintRelationship(out, response);
      return Status::Ok();
    };
  });

  CLI::App* remove = federation->add_subcommand("delete", "Deletes a dynamic federation relationship");
  remove->add_option("--id", id, "SPIFFE ID of the trust domain");
  AddCommonFlags(remove, common, true);
  remove->callback([&, id_held] {
    action = [&, id_held](AdminClient& client) -> Status {
      if (id.empty()) return InvalidArgumentError("id is required");
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/trustdomain/BatchDeleteFederationRelationship",
                                                         {{"trust_domains", {TrustDomainName(id)}}}));
      if (common.output == "json") out << response.dump() << "\n";
      const json& status = response["results"][0]["status"];
      if (status.value("code", 2) != 0) {
        return Status(static_cast<Code>(status.value("code", 2)),
                      "failed to delete federation relationship \"" + TrustDomainName(id) + "\": " + status.value("message", ""));
      }
      if (common.output != "json") out << "federation relationship deleted.\n";
      return Status::Ok();
    };
  });

  CLI::App* refresh = federation->add_subcommand("refresh", "Refreshes the bundle from the specified federated trust domain");
  refresh->add_option("--id", id, "SPIFFE ID of the trust domain");
  AddCommonFlags(refresh, common, true);
  refresh->callback([&, id_held] {
    action = [&, id_held](AdminClient& client) -> Status {
      if (id.empty()) return InvalidArgumentError("id is required");
      auto response = client.Call("/v1/trustdomain/RefreshBundle", {{"trust_domain", TrustDomainName(id)}});
      if (!response.ok() && response.status().code() == Code::kNotFound) {
        return NotFoundError("there is no federation relationship with trust domain \"" + TrustDomainName(id) + "\"");
      }
      if (!response.ok()) return Status(response.status().code(), "failed to refresh bundle: " + response.status().message());
      out << (common.output == "json" ? "{}\n" : "Bundle refreshed\n");
      return Status::Ok();
    };
  });

  // The federated bundles a trust domain had, newest first: what was trusted when.
  CLI::App* bundle = app.get_subcommand("bundle");
  CLI::App* history = bundle->add_subcommand("history", "List the last versions of a federated bundle, newest first");
  history->add_option("--id", id, "The trust domain of the bundle")->required();
  AddCommonFlags(history, common, true);
  history->callback([&, id_held] {
    action = [&, id_held](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/bundle/ListBundleHistory", {{"trust_domain", TrustDomainName(id)}}));
      if (common.output == "json") {
        out << response.dump() << "\n";
        return Status::Ok();
      }
      const json& versions = response["versions"];
      out << "Found " << versions.size() << (versions.size() == 1 ? " version" : " versions") << " of the bundle of "
          << response.value("trust_domain", "") << "\n";
      auto td = TrustDomain::Parse(response.value("trust_domain", ""));
      for (const json& version : versions) {
        out << "\nStored at                 : " << TimeText(version.value("stored_at", json("0"))) << "\n";
        auto parsed = td.ok() ? TrustBundleFromJwks(*td, version.value("jwks", "")) : Result<TrustBundle>(td.status());
        if (!parsed.ok()) {
          out << "Does not parse            : " << parsed.status().message() << "\n";
          continue;
        }
        out << "Sequence number           : " << parsed->sequence << "\n";
        out << "X.509 authorities         : " << parsed->x509.authorities.size() << "\n";
        out << "JWT authorities           : " << parsed->jwt.authorities.size() << "\n";
      }
      return Status::Ok();
    };
  });
}

}  // namespace sigil::serverd
