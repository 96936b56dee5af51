// `serverd localauthority x509|jwt show|prepare|activate|taint|revoke`, with the flags and
// output of `spire-server localauthority`; -output json prints SPIRE's responses.
#include <memory>

#include "serverd/admin/cli_flags.h"

namespace sigil::serverd {
namespace {

using nlohmann::json;

// One authority, as SPIRE's CLI prints an AuthorityState.
void PrintAuthority(std::ostream& out, const json& state, bool x509) {
  out << "  Authority ID: " << state.value("authority_id", "") << "\n";
  out << "  Expires at: " << TimeText(state.value("expires_at", json("0"))) << "\n";
  if (!x509) return;
  const std::string upstream = state.value("upstream_authority_subject_key_id", "");
  if (upstream.empty()) {
    out << "  Upstream authority ID: No upstream authority\n";
  } else {
    out << "  Upstream authority Subject Key ID: " << upstream << "\n";
  }
}

struct Verb {
  const char* name;
  const char* description;
  const char* method;  // without the kind: "Activate" for ActivateX509Authority
  const char* answer;  // the response's member, and its heading
  const char* heading;
};

constexpr Verb kVerbs[] = {
    {"prepare", "Prepare a new authority: a new key, and its CA certificate or public key in the bundle", "Prepare",
     "prepared_authority", "Prepared"},
    {"activate", "Activate the prepared authority: it signs from now on", "Activate", "activated_authority",
     "Activated"},
    {"taint", "Mark the old authority as tainted: agents replace what it issued at once", "Taint",
     "tainted_authority", "Tainted"},
    {"revoke", "Remove the tainted old authority from the bundle", "Revoke", "revoked_authority", "Revoked"},
};

void AddKind(CLI::App* localauthority, bool x509, CommonFlags& common, AdminAction& action, std::ostream& out) {
  const std::string kind = x509 ? "X509" : "JWT";
  const std::string title = x509 ? "X.509" : "JWT";
  CLI::App* noun = localauthority->add_subcommand(x509 ? "x509" : "jwt", "Manage the " + title + " authorities")
                       ->require_subcommand(1);
  CLI::App* show = noun->add_subcommand("show", "Show the active, prepared and old " + title + " authorities");
  AddCommonFlags(show, common, true);
  show->callback([&, kind, title, x509] {
    action = [&out, &common, kind, title, x509](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/localauthority/Get" + kind + "AuthorityState", json::object()));
      if (common.output == "json") {
        out << response.dump() << "\n";
        return Status::Ok();
      }
      bool first = true;
      for (const auto& [member, heading] : {std::pair{"active", "Active"}, std::pair{"prepared", "Prepared"},
                                            std::pair{"old", "Old"}}) {
        if (!first) out << "\n";
        first = false;
        out << heading << " " << title << " authority:\n";
        if (response.contains(member)) {
          PrintAuthority(out, response[member], x509);
        } else {
          out << "  No " << std::string(member) << " " << title << " authority found\n";
        }
      }
      return Status::Ok();
    };
  });
  for (const Verb& verb : kVerbs) {
    CLI::App* command = noun->add_subcommand(verb.name, verb.description);
    auto authority_id = std::make_shared<std::string>();
    const bool named = std::string_view(verb.name) != "prepare";
    if (named) command->add_option("--authorityID", *authority_id, "The authority ID of the " + title + " authority");
    AddCommonFlags(command, common, true);
    command->callback([&, kind, title, x509, named, authority_id, verb] {
      action = [&out, &common, kind, title, x509, named, authority_id, verb](AdminClient& client) -> Status {
        if (named && authority_id->empty()) return InvalidArgumentError("an authority ID is required");
        json body = json::object();
        if (named) body["authority_id"] = *authority_id;
        auto response = client.Call(std::string("/v1/localauthority/") + verb.method + kind + "Authority", body);
        if (!response.ok()) {
          return Status(response.status().code(), "could not " + std::string(verb.name) + " " + title +
                                                      " authority: " + response.status().message());
        }
        if (common.output == "json") {
          out << response->dump() << "\n";
          return Status::Ok();
        }
        out << verb.heading << " " << title << " authority:\n";
        PrintAuthority(out, response->value(verb.answer, json::object()), x509);
        return Status::Ok();
      };
    });
  }
}

}  // namespace

void AddLocalAuthorityCommands(CLI::App& app, CommonFlags& common, AdminAction& action, std::ostream& out) {
  CLI::App* localauthority =
      app.add_subcommand("localauthority", "Manage the authorities this server signs with")->require_subcommand(1);
  AddKind(localauthority, true, common, action, out);
  AddKind(localauthority, false, common, action, out);
}

}  // namespace sigil::serverd
