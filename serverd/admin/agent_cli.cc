// `serverd agent list|show|evict|ban|count|purge` and `serverd token generate`, with the flags,
// filters and output of `spire-server agent` and `spire-server token`.
#include <charconv>
#include <memory>

#include "core/config.h"
#include "core/selector.h"
#include "core/x509_ca.h"
#include "serverd/admin/agent_json.h"
#include "serverd/admin/cli_flags.h"

namespace sigil::serverd {
namespace {

using nlohmann::json;

// As `spire-server agent list` prints an agent.
void PrintAgent(std::ostream& out, const json& a) {
  auto row = [&](const char* label, const std::string& value) {
    out << label << std::string(18 - std::string(label).size(), ' ') << ": " << value << "\n";
  };
  row("SPIFFE ID", IdString(a["id"]));
  row("Attestation type", a.value("attestation_type", ""));
  row("Expiration time", TimeText(a.value("x509svid_expires_at", json("0"))));
  if (a.value("banned", false)) {
    row("Banned", "true");
  } else {
    row("Serial number", a.value("x509svid_serial_number", ""));
  }
  row("Can re-attest", a.value("can_reattest", false) ? "true" : "false");
  out << "\n";
}

// The filter flags of `agent list` and `agent count`, SPIRE's.
struct FilterFlags {
  std::vector<std::string> selectors;
  std::string match_selectors = "superset";
  std::string attestation_type, banned, can_reattest, expires_before;
};

void AddFilterFlags(CLI::App* command, FilterFlags& f) {
  command->add_option("--selector", f.selectors,
                      "A colon-delimited type:value selector; repeatable");
  command
      ->add_option("--matchSelectorsOn", f.match_selectors,
                   "How -selector matches: exact, subset, superset or any")
      ->check(CLI::IsMember({"exact", "subset", "superset", "any"}));
  command->add_option("--attestationType", f.attestation_type,
                      "Only agents attested this way: join_token or tpm_devid");
  command->add_option("--banned", f.banned,
                      "true: only banned agents; false: only agents not banned");
  command->add_option(
      "--canReattest", f.can_reattest,
      "true: only agents that can attest again (tpm_devid); false: only those that cannot");
  command->add_option("--expiresBefore", f.expires_before,
                      "Only agents whose SVID expires before this time, as \"" +
                          std::string(kExpiresBeforeLayout) + "\"");
}

// SPIRE's three-way flags take "true" or "false"; anything else is refused rather than read as
// "all", which would list agents the operator meant to leave out.
Status AddBoolFilter(json& filter, const char* key, const char* flag, const std::string& value) {
  if (value.empty()) return Status::Ok();
  if (value != "true" && value != "false") {
    return InvalidArgumentError(std::string(flag) + " '" + value + "': expected true or false");
  }
  filter[key] = value == "true";
  return Status::Ok();
}

Result<json> FilterJson(const FilterFlags& f) {
  json filter = json::object();
  if (!f.selectors.empty()) {
    SIGIL_ASSIGN_OR_RETURN(json selectors, SelectorsFlag(f.selectors));
    filter["by_selector_match"] = {{"selectors", selectors},
                                   {"match", MatchName(f.match_selectors)}};
  }
  if (!f.attestation_type.empty()) filter["by_attestation_type"] = f.attestation_type;
  SIGIL_RETURN_IF_ERROR(AddBoolFilter(filter, "by_banned", "-banned", f.banned));
  SIGIL_RETURN_IF_ERROR(AddBoolFilter(filter, "by_can_reattest", "-canReattest", f.can_reattest));
  if (!f.expires_before.empty()) {
    if (auto parsed = ParseExpiresBefore(f.expires_before); !parsed.ok()) {
      return InvalidArgumentError("-expiresBefore: " + parsed.status().message());
    }
    filter["by_expires_before"] = f.expires_before;
  }
  return filter;
}

void AddListCommands(CLI::App* agent, CommonFlags& common, AdminAction& action, std::ostream& out) {
  for (const bool count : {false, true}) {
    auto flags = std::make_shared<FilterFlags>();
    CLI::App* command = agent->add_subcommand(
        count ? "count" : "list", count ? "Count attested agents" : "List attested agents");
    AddFilterFlags(command, *flags);
    AddCommonFlags(command, common, true);
    command->callback([&, flags, count] {
      action = [&, flags, count](AdminClient& client) -> Status {
        SIGIL_ASSIGN_OR_RETURN(json filter, FilterJson(*flags));
        SIGIL_ASSIGN_OR_RETURN(json response,
                               client.Call(count ? "/v1/agent/CountAgents" : "/v1/agent/ListAgents",
                                           {{"filter", filter}}));
        if (common.output == "json") {
          out << response.dump() << "\n";
        } else if (count) {
          const int64_t n = response.value("count", 0);
          out << n << (n == 1 ? " attested agent" : " attested agents") << "\n";
        } else if (response["agents"].empty()) {
          out << "No attested agents found\n";
        } else {
          const size_t n = response["agents"].size();
          out << "Found " << n << " attested " << (n == 1 ? "agent" : "agents") << ":\n\n";
          for (const auto& a : response["agents"]) PrintAgent(out, a);
        }
        return Status::Ok();
      };
    });
  }
}

void AddOneAgentCommands(CLI::App* agent, CommonFlags& common, AdminAction& action,
                         std::ostream& out) {
  auto agent_id = std::make_shared<std::string>();
  auto add = [&](const char* name, const char* help, const char* path, const char* done) {
    CLI::App* command = agent->add_subcommand(name, help);
    command->add_option("--spiffeID", *agent_id, "The agent's SPIFFE ID")->required();
    AddCommonFlags(command, common, done == nullptr);
    command->callback([&, agent_id, path, done] {
      action = [&, agent_id, path, done](AdminClient& client) -> Status {
        SIGIL_RETURN_IF_ERROR(SpiffeIdFlag("-spiffeID", *agent_id).status());
        SIGIL_ASSIGN_OR_RETURN(json response, client.Call(path, {{"id", *agent_id}}));
        if (done != nullptr) {
          out << done << "\n";
        } else if (common.output == "json") {
          out << response.dump() << "\n";
        } else {
          out << "Found an attested agent given its SPIFFE ID\n\n";
          PrintAgent(out, response);
          for (const auto& s : response["selectors"]) {
            out << "Selectors         : " << s.value("type", "") << ":" << s.value("value", "")
                << "\n";
          }
        }
        return Status::Ok();
      };
    });
  };
  add("show", "Show an attested agent", "/v1/agent/GetAgent", nullptr);
  add("evict", "Evict an agent; it must attest again", "/v1/agent/DeleteAgent",
      "Agent evicted successfully");
  add("ban", "Ban an agent; it cannot attest again", "/v1/agent/BanAgent",
      "Agent banned successfully");
}

// An int64 as SPIRE's JSON writes it (a string) or as a number; 0 for anything else.
int64_t Int64Of(const json& value) {
  if (value.is_number_integer()) return value.get<int64_t>();
  int64_t seconds = 0;
  if (!value.is_string()) return 0;
  const std::string& text = value.get_ref<const std::string&>();
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  return error == std::errc() && end == text.data() + text.size() ? seconds : 0;
}

// As SPIRE's: the agents that can attest again (a join token's agent cannot, so its record is
// all there is of it) whose SVID expired more than -expiredFor ago.
Status Purge(AdminClient& client, std::chrono::seconds expired_for, bool dry_run,
             const CommonFlags& common, std::ostream& out) {
  SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/agent/ListAgents",
                                                    {{"filter", {{"by_can_reattest", true}}}}));
  const int64_t now = NowUnixSeconds();
  json expired = json::array();
  for (const json& agent : response["agents"]) {
    const int64_t expires_at = Int64Of(agent["x509svid_expires_at"]);
    if (now - expires_at <= expired_for.count()) continue;
    json result{{"agent_id", IdString(agent["id"])}, {"deleted", false}};
    if (!dry_run) {
      auto deleted = client.Call("/v1/agent/DeleteAgent", {{"id", IdString(agent["id"])}});
      if (deleted.ok()) {
        result["deleted"] = true;
      } else {
        result["error"] = deleted.status().message();
      }
    }
    expired.push_back(std::move(result));
  }
  if (common.output == "json") {
    out << json{{"expired_agents", expired}}.dump() << "\n";
    return Status::Ok();
  }
  if (expired.empty()) {
    out << "No agents to purge.\n";
    return Status::Ok();
  }
  out << "Found " << expired.size() << " expired " << (expired.size() == 1 ? "agent" : "agents")
      << "\n\n";
  if (dry_run) {
    out << "\nAgents that can be purged:\n";
    for (const json& result : expired)
      out << "SPIFFE ID         : " << result.value("agent_id", "") << "\n";
    return Status::Ok();
  }
  for (const bool purged : {true, false}) {
    bool heading = false;
    for (const json& result : expired) {
      if (result.value("deleted", false) != purged) continue;
      if (!heading) out << (purged ? "Agents purged:\n" : "Agents not purged:\n");
      heading = true;
      out << "SPIFFE ID         : " << result.value("agent_id", "") << "\n";
      if (!purged) out << "Error             : " << result.value("error", "") << "\n";
    }
  }
  return Status::Ok();
}

void AddPurgeCommand(CLI::App* agent, CommonFlags& common, AdminAction& action, std::ostream& out) {
  struct Flags {
    std::string expired_for = "720h";
    bool dry_run = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* purge = agent->add_subcommand("purge",
                                          "Delete the agents that can attest again (tpm_devid) "
                                          "whose SVID expired more than -expiredFor ago");
  purge->add_option("--expiredFor", flags->expired_for,
                    "How long ago the agent's SVID must have expired, as 720h, 30m or 1h30m "
                    "(default 720h, 30 days)");
  purge->add_flag("--dryRun", flags->dry_run, "Only print the agents that would be deleted");
  AddCommonFlags(purge, common, true);
  purge->callback([&, flags] {
    action = [&, flags](AdminClient& client) -> Status {
      auto expired_for = ParseDuration(flags->expired_for);
      if (!expired_for.ok())
        return InvalidArgumentError("-expiredFor: " + expired_for.status().message());
      return Purge(client, *expired_for, flags->dry_run, common, out);
    };
  });
}

void AddTokenCommand(CLI::App& app, CommonFlags& common, AdminAction& action, std::ostream& out) {
  struct Flags {
    std::string spiffe_id;
    int64_t ttl = 600;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* token = app.add_subcommand("token", "Manage join tokens")->require_subcommand(1);
  CLI::App* generate = token->add_subcommand("generate", "Generate a join token");
  generate->add_option(
      "--spiffeID", flags->spiffe_id,
      "Additional SPIFFE ID to assign the token owner: an entry parented to the token's agent");
  generate->add_option("--ttl", flags->ttl, "Token TTL in seconds")->default_val(600);
  AddCommonFlags(generate, common, true);
  generate->callback([&, flags] {
    action = [&, flags](AdminClient& client) -> Status {
      if (flags->ttl <= 0) return InvalidArgumentError("-ttl must be a positive number of seconds");
      json body{{"ttl", flags->ttl}};
      if (!flags->spiffe_id.empty()) {
        SIGIL_RETURN_IF_ERROR(SpiffeIdFlag("-spiffeID", flags->spiffe_id).status());
        body["agent_id"] = flags->spiffe_id;
      }
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/agent/CreateJoinToken", body));
      if (common.output == "json") {
        out << response.dump() << "\n";
      } else {
        out << "Token: " << response.value("value", "") << "\n";
      }
      return Status::Ok();
    };
  });
}

}  // namespace

void AddAgentCommands(CLI::App& app, CommonFlags& common, AdminAction& action, std::ostream& out,
                      std::ostream&) {
  CLI::App* agent = app.add_subcommand("agent", "Manage attested agents")->require_subcommand(1);
  AddListCommands(agent, common, action, out);
  AddOneAgentCommands(agent, common, action, out);
  AddPurgeCommand(agent, common, action, out);
  AddTokenCommand(app, common, action, out);
}

}  // namespace sigil::serverd
