#include "serverd/admin/cli.h"

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <iostream>
#include <filesystem>
#include <tuple>
#include <sstream>

#include "core/base64url.h"
#include "core/cli/command_line.h"
#include "core/cli_args.h"
#include "core/csr.h"
#include "core/file.h"
#include "hw/soft_key_store.h"
#include "core/registration_entry.h"
#include "core/selector.h"
#include "serverd/admin/cli_flags.h"
#include "serverd/admin/entry_json.h"
#include "serverd/entry/entry_service.h"

namespace sigil::serverd {

using nlohmann::json;

std::string TimeText(const json& unix_seconds) {
  int64_t seconds = 0;
  if (unix_seconds.is_number_integer()) {
    seconds = unix_seconds.get<int64_t>();
  } else if (unix_seconds.is_string()) {
    const std::string& text = unix_seconds.get_ref<const std::string&>();
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seconds);
    if (error != std::errc() || end != text.data() + text.size()) return text;
  }
  if (seconds == 0) return "";
  const std::time_t t = seconds;
  std::tm utc{};
  if (gmtime_r(&t, &utc) == nullptr) return std::to_string(seconds);
  char buffer[64];
  if (std::strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M:%S +0000 UTC", &utc) == 0) return std::to_string(seconds);
  return buffer;
}

void AddCommonFlags(CLI::App* command, CommonFlags& common, bool has_output) {
  command->add_option("--socketPath", common.socket_path, "Path to the serverd admin socket")
      ->default_str(kDefaultAdminSocket);
  if (has_output) {
    command->add_option("--output", common.output, "Output format: pretty or json")
        ->check(CLI::IsMember({"pretty", "json"}));
  }
}

namespace {

std::string IdString(const json& id) {
  if (id.is_string()) return id.get<std::string>();
  if (id.is_object()) return "spiffe://" + id.value("trust_domain", "") + id.value("path", "");
  return "";
}

std::string TtlText(const json& ttl) {
  const int64_t seconds = ttl.is_number_integer() ? ttl.get<int64_t>() : 0;
  return seconds == 0 ? "default" : std::to_string(seconds);
}

// Unix seconds, as SPIRE writes them (a string or a number), as a UTC time; what is not a time
// a gmtime can hold is printed as it came rather than stopping the listing.

// As `spire-server entry show` prints an entry.
void PrintEntry(std::ostream& out, const json& e) {
  auto row = [&](const char* label, const std::string& value) {
    out << label << std::string(17 - std::string(label).size(), ' ') << ": " << value << "\n";
  };
  row("Entry ID", e.value("id", ""));
  row("SPIFFE ID", IdString(e["spiffe_id"]));
  row("Parent ID", IdString(e["parent_id"]));
  row("Revision", e.value("revision_number", "0"));
  if (e.value("downstream", false)) row("Downstream", "true");
  row("X509-SVID TTL", TtlText(e["x509_svid_ttl"]));
  row("JWT-SVID TTL", TtlText(e["jwt_svid_ttl"]));
  if (const std::string expiry = TimeText(e.value("expires_at", json("0"))); !expiry.empty()) row("Expiration time", expiry);
  for (const auto& s : e["selectors"]) row("Selector", s.value("type", "") + ":" + s.value("value", ""));
  for (const auto& f : e["federates_with"]) row("FederatesWith", f.get<std::string>());
  for (const auto& d : e["dns_names"]) row("DNS name", d.get<std::string>());
  if (e.value("admin", false)) row("Admin", "true");
  if (!e.value("hint", "").empty()) row("Hint", e.value("hint", ""));
  if (const std::string created = TimeText(e.value("created_at", json("0"))); !created.empty()) row("Created At", created);
  out << "\n";
}

void PrintAgent(std::ostream& out, const json& a) {
  auto row = [&](const char* label, const std::string& value) {
    out << label << std::string(18 - std::string(label).size(), ' ') << ": " << value << "\n";
  };
  row("SPIFFE ID", IdString(a["id"]));
  row("Attestation type", a.value("attestation_type", ""));
  row("Expiration time", TimeText(a.value("x509svid_expires_at", json("0"))));
  row("Serial number", a.value("x509svid_serial_number", ""));
  row("Banned", a.value("banned", false) ? "true" : "false");
  for (const auto& s : a["selectors"]) row("Selectors", s.value("type", "") + ":" + s.value("value", ""));
  out << "\n";
}

// Flags that describe one entry, shared by create and update.
struct EntryFlags {
  std::string entry_id;
  std::string spiffe_id;
  std::string parent_id;
  std::vector<std::string> selectors;
  int64_t x509_svid_ttl = 0;
  int64_t jwt_svid_ttl = 0;
  std::vector<std::string> dns_names;
  std::vector<std::string> federates_with;
  bool admin = false;
  bool downstream = false;
  int64_t entry_expiry = 0;
  std::string hint;
  bool node = false;
  std::string data_path;
};

void AddEntryFlags(CLI::App* command, EntryFlags& f, bool update) {
  if (update) command->add_option("--entryID", f.entry_id, "The ID of the entry to update")->required();
  command->add_option("--spiffeID", f.spiffe_id, "The SPIFFE ID this entry issues");
  command->add_option("--parentID", f.parent_id, "The SPIFFE ID of this entry's parent");
  command->add_option("--selector", f.selectors, "A colon-delimited type:value selector; repeatable");
  command->add_option("--x509SVIDTTL", f.x509_svid_ttl, "The TTL of X509-SVIDs issued for this entry, in seconds");
  command->add_option("--jwtSVIDTTL", f.jwt_svid_ttl, "The TTL of JWT-SVIDs issued for this entry, in seconds");
  command->add_option("--dns", f.dns_names, "A DNS name for the X509-SVID; repeatable");
  command->add_option("--federatesWith", f.federates_with, "A trust domain to federate with; repeatable");
  command->add_flag("--admin", f.admin, "Give the workload admin access to the server API");
  command->add_flag("--downstream", f.downstream, "Make the workload a downstream CA");
  command->add_option("--entryExpiry", f.entry_expiry, "When the entry expires, in Unix seconds");
  command->add_option("--hint", f.hint, "A hint for workloads that get several SVIDs");
  if (!update) {
    command->add_flag("--node", f.node, "Make the entry a node alias (parented to the server)");
    command->add_option("--data", f.data_path, "A JSON file of entries ({\"entries\": [...]}) to create at once");
  }
  command->add_flag("--storeSVID")->description("Accepted for SPIRE compatibility; agents keep SVIDs in memory");
}

Result<RegistrationEntry> EntryFromFlags(const EntryFlags& f, bool update) {
  RegistrationEntry e;
  e.id = f.entry_id;
  e.spiffe_id = f.spiffe_id;
  e.parent_id = f.parent_id;
  std::string missing;
  if (e.spiffe_id.empty()) missing += " -spiffeID";
  if (e.parent_id.empty() && !f.node) missing += " -parentID (or -node)";
  if (f.selectors.empty()) missing += " -selector";
  if (!missing.empty()) {
    return InvalidArgumentError(std::string(update ? "entry update" : "entry create") + " needs" + missing);
  }
  if (f.node && !e.parent_id.empty()) return InvalidArgumentError("-node and -parentID cannot both be given");
  if (f.node) {
    // A node alias hangs off the server of the entry's own trust domain.
    SIGIL_ASSIGN_OR_RETURN(SpiffeId id, SpiffeId::Parse(e.spiffe_id));
    e.parent_id = ServerSpiffeId(id.trust_domain()).str();
  }
  for (const std::string& text : f.selectors) {
    SIGIL_ASSIGN_OR_RETURN(Selector s, Selector::Parse(text));
    e.selectors.push_back(s);
  }
  e.x509_svid_ttl = std::chrono::seconds(f.x509_svid_ttl);
  e.jwt_svid_ttl = std::chrono::seconds(f.jwt_svid_ttl);
  e.dns_names = f.dns_names;
  e.federates_with = f.federates_with;
  e.admin = f.admin;
  e.downstream = f.downstream;
  e.expires_at = f.entry_expiry;
  e.hint = f.hint;
  return e;
}

// The per-item results of a batch call: prints each created entry; a single failure is the
// command's error, several are listed one per line and summed up.
Status PrintBatch(std::ostream& out, std::ostream& err, const json& response, const CommonFlags& common) {
  if (common.output == "json") out << response.dump() << "\n";
  const json& results = response["results"];
  std::vector<Status> failures;
  for (size_t i = 0; i < results.size(); ++i) {
    const json& result = results[i];
    const int code = result["status"].value("code", 2);
    if (code != 0) {
      failures.emplace_back(static_cast<Code>(code), result["status"].value("message", "failed"));
      if (results.size() > 1) err << "Error: entry " << i + 1 << ": " << failures.back().message() << "\n";
    } else if (common.output != "json" && result.contains("entry")) {
      PrintEntry(out, result["entry"]);
    }
  }
  if (failures.empty()) return Status::Ok();
  if (results.size() == 1) return failures.front();
  return Status(failures.front().code(),
                std::to_string(failures.size()) + " of " + std::to_string(results.size()) + " entries failed");
}

// As `spire-server x509 mint`: the key is made here and never leaves this process but for
// the files it writes; the server sees only a CSR.
Status MintX509(AdminClient& client, const std::string& spiffe_id, int64_t ttl, const std::vector<std::string>& dns,
                const std::string& write_dir, std::ostream& out) {
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr key, hw::GenerateSoftKey(KeyType::kEcP256));
  SIGIL_ASSIGN_OR_RETURN(Bytes csr, MakeCsr(key.get()));
  json body{{"csr", Base64Encode(csr)}, {"spiffe_id", spiffe_id}, {"dns", dns}};
  if (ttl > 0) body["ttl"] = ttl;
  SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/svid/MintX509SVID", body));
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PKCS8PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSSLError(Code::kInternal, "writing the private key");
  }
  char* data = nullptr;
  const long key_length = BIO_get_mem_data(bio.get(), &data);
  const std::string key_pem(data, static_cast<size_t>(key_length));
  const std::string svid_pem = response.value("svid_pem", "");
  const std::string bundle_pem = response.value("bundle_pem", "");
  if (write_dir.empty()) {
    out << "X509-SVID:\n" << svid_pem << "\nPrivate key:\n" << key_pem << "\nRoot CAs:\n" << bundle_pem;
    return Status::Ok();
  }
  const std::filesystem::path dir(write_dir);
  for (const auto& [name, text, mode] : {std::tuple<const char*, const std::string&, mode_t>{"svid.pem", svid_pem, 0644},
                                         {"key.pem", key_pem, 0600}, {"bundle.pem", bundle_pem, 0644}}) {
    const std::filesystem::path path = dir / name;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      if (fd >= 0) ::close(fd);
      return Status(Code::kPermissionDenied, "cannot write " + path.string());
    }
    ::close(fd);
    out << (std::string(name) == "svid.pem" ? "X509-SVID" : std::string(name) == "key.pem" ? "Private key" : "Root CAs")
        << " written to " << path.string() << "\n";
  }
  return Status::Ok();
}

// SPIFFE's own advice calls an entry that selects a binary (unix:path, unix:sha256) and no
// user weak: any local user who can run that binary — or exec it from a process they started,
// in the window Linux leaves between connect and accept — receives its identity.
void WarnOfBinaryWithoutUser(std::ostream& err, const RegistrationEntry& entry) {
  bool names_binary = false;
  bool names_user = false;
  for (const Selector& selector : entry.selectors) {
    if (selector.type != "unix") continue;
    names_binary = names_binary || selector.value.starts_with("path:") || selector.value.starts_with("sha256:");
    names_user = names_user || selector.value.starts_with("uid:") || selector.value.starts_with("gid:") ||
                 selector.value.starts_with("user:") || selector.value.starts_with("group:");
  }
  if (names_binary && !names_user) {
    err << "Warning: entry for " << entry.spiffe_id
        << " selects a binary (unix:path or unix:sha256) without unix:uid or unix:gid; any local user who can run "
           "that binary receives its identity. Add unix:uid or unix:gid.\n";
  }
}

}  // namespace

int RunAdminCommand(const std::vector<std::string>& raw_args, const AdminConnector& connect, std::ostream& out,
                    std::ostream& err) {
  CLI::App app{"serverd administration commands", "serverd"};
  app.require_subcommand(1);
  CommonFlags common;
  AdminAction action;

  CLI::App* entry = app.add_subcommand("entry", "Manage registration entries")->require_subcommand(1);
  EntryFlags create_flags;
  CLI::App* create = entry->add_subcommand("create", "Create registration entries");
  AddEntryFlags(create, create_flags, false);
  AddCommonFlags(create, common, true);
  create->callback([&] {
    action = [&](AdminClient& client) -> Status {
      std::vector<json> entries;
      if (!create_flags.data_path.empty()) {
        SIGIL_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(create_flags.data_path, "-data file"));
        SIGIL_ASSIGN_OR_RETURN(auto parsed, EntriesFromDataFile(text, create_flags.data_path));
        for (const auto& e : parsed) {
          WarnOfBinaryWithoutUser(err, e);
          entries.push_back(EntryToJson(e));
        }
      } else {
        SIGIL_ASSIGN_OR_RETURN(RegistrationEntry e, EntryFromFlags(create_flags, false));
        WarnOfBinaryWithoutUser(err, e);
        entries.push_back(EntryToJson(e));
      }
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/entry/BatchCreateEntry", {{"entries", entries}}));
      return PrintBatch(out, err, response, common);
    };
  });

  EntryFlags update_flags;
  CLI::App* update = entry->add_subcommand("update", "Update a registration entry");
  AddEntryFlags(update, update_flags, true);
  AddCommonFlags(update, common, true);
  update->callback([&] {
    action = [&](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(RegistrationEntry e, EntryFromFlags(update_flags, true));
      WarnOfBinaryWithoutUser(err, e);
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/entry/BatchUpdateEntry", {{"entries", {EntryToJson(e)}}}));
      return PrintBatch(out, err, response, common);
    };
  });

  struct ShowFlags {
    std::string entry_id, spiffe_id, parent_id, match = "superset";
    std::vector<std::string> selectors;
  } show_flags;
  CLI::App* show = entry->add_subcommand("show", "Show registration entries");
  show->add_option("--entryID", show_flags.entry_id, "Show only the entry with this ID");
  show->add_option("--spiffeID", show_flags.spiffe_id, "Show entries with this SPIFFE ID");
  show->add_option("--parentID", show_flags.parent_id, "Show entries with this parent");
  show->add_option("--selector", show_flags.selectors, "Show entries matching this selector; repeatable");
  show->add_option("--matchSelectorsOn", show_flags.match, "How selectors match: exact, subset, superset or any")
      ->check(CLI::IsMember({"exact", "subset", "superset", "any"}));
  AddCommonFlags(show, common, true);
  show->callback([&] {
    action = [&](AdminClient& client) -> Status {
      json entries = json::array();
      if (!show_flags.entry_id.empty()) {
        SIGIL_ASSIGN_OR_RETURN(json e, client.Call("/v1/entry/GetEntry", {{"id", show_flags.entry_id}}));
        entries.push_back(e);
      } else {
        json filter = json::object();
        if (!show_flags.spiffe_id.empty()) filter["by_spiffe_id"] = show_flags.spiffe_id;
        if (!show_flags.parent_id.empty()) filter["by_parent_id"] = show_flags.parent_id;
        if (!show_flags.selectors.empty()) {
          json selectors = json::array();
          for (const auto& text : show_flags.selectors) {
            SIGIL_ASSIGN_OR_RETURN(Selector s, Selector::Parse(text));
            selectors.push_back({{"type", s.type}, {"value", s.value}});
          }
          filter["by_selectors"] = {{"selectors", selectors}, {"match", "MATCH_" + show_flags.match}};
        }
        SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/entry/ListEntries", {{"filter", filter}}));
        entries = response["entries"];
      }
      if (common.output == "json") {
        out << json{{"entries", entries}}.dump() << "\n";
        return Status::Ok();
      }
      out << "Found " << entries.size() << (entries.size() == 1 ? " entry" : " entries") << "\n";
      for (const auto& e : entries) PrintEntry(out, e);
      return Status::Ok();
    };
  });

  std::string delete_id;
  CLI::App* remove = entry->add_subcommand("delete", "Delete a registration entry");
  remove->add_option("--entryID", delete_id, "The ID of the entry to delete")->required();
  AddCommonFlags(remove, common, false);
  remove->callback([&] {
    action = [&](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/entry/BatchDeleteEntry", {{"ids", {delete_id}}}));
      const json& status = response["results"][0]["status"];
      if (status.value("code", 2) != 0) return Status(static_cast<Code>(status.value("code", 2)), status.value("message", ""));
      out << "Deleted entry with ID: " << delete_id << "\n";
      return Status::Ok();
    };
  });

  CLI::App* count = entry->add_subcommand("count", "Count registration entries");
  AddCommonFlags(count, common, true);
  count->callback([&] {
    action = [&](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/entry/CountEntries", json::object()));
      if (common.output == "json") {
        out << response.dump() << "\n";
      } else {
        const int64_t n = response.value("count", 0);
        out << n << (n == 1 ? " registration entry" : " registration entries") << "\n";
      }
      return Status::Ok();
    };
  });

  CLI::App* agent = app.add_subcommand("agent", "Manage attested agents")->require_subcommand(1);
  std::string agent_id;
  auto agent_command = [&](const char* name, const char* help, const char* path, const char* done) {
    CLI::App* command = agent->add_subcommand(name, help);
    command->add_option("--spiffeID", agent_id, "The agent's SPIFFE ID")->required();
    AddCommonFlags(command, common, std::string(name) == "show");
    command->callback([&, path, done] {
      action = [&, path, done](AdminClient& client) -> Status {
        SIGIL_ASSIGN_OR_RETURN(json response, client.Call(path, {{"id", agent_id}}));
        if (done == nullptr) {
          if (common.output == "json") {
            out << response.dump() << "\n";
          } else {
            out << "Found an attested agent given its SPIFFE ID\n\n";
            PrintAgent(out, response);
          }
        } else {
          out << done << "\n";
        }
        return Status::Ok();
      };
    });
  };
  agent_command("show", "Show an attested agent", "/v1/agent/GetAgent", nullptr);
  agent_command("evict", "Evict an agent; it must attest again", "/v1/agent/DeleteAgent", "Agent evicted successfully");
  agent_command("ban", "Ban an agent; it cannot attest again", "/v1/agent/BanAgent", "Agent banned successfully");
  CLI::App* list = agent->add_subcommand("list", "List attested agents");
  AddCommonFlags(list, common, true);
  list->callback([&] {
    action = [&](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/agent/ListAgents", json::object()));
      if (common.output == "json") {
        out << response.dump() << "\n";
        return Status::Ok();
      }
      const auto& agents = response["agents"];
      if (agents.empty()) {
        out << "No attested agents found\n";
        return Status::Ok();
      }
      out << "Found " << agents.size() << " attested " << (agents.size() == 1 ? "agent" : "agents") << ":\n\n";
      for (const auto& a : agents) PrintAgent(out, a);
      return Status::Ok();
    };
  });
  CLI::App* agent_count = agent->add_subcommand("count", "Count attested agents");
  AddCommonFlags(agent_count, common, true);
  agent_count->callback([&] {
    action = [&](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/agent/CountAgents", json::object()));
      if (common.output == "json") {
        out << response.dump() << "\n";
      } else {
        const int64_t n = response.value("count", 0);
        out << n << (n == 1 ? " attested agent" : " attested agents") << "\n";
      }
      return Status::Ok();
    };
  });

  CLI::App* token = app.add_subcommand("token", "Manage join tokens")->require_subcommand(1);
  std::string token_spiffe_id;
  int64_t token_ttl = 600;
  CLI::App* generate = token->add_subcommand("generate", "Generate a join token");
  generate->add_option("--spiffeID", token_spiffe_id, "Additional SPIFFE ID to assign the token owner");
  generate->add_option("--ttl", token_ttl, "Token TTL in seconds")->default_val(600);
  AddCommonFlags(generate, common, true);
  generate->callback([&] {
    action = [&](AdminClient& client) -> Status {
      if (token_ttl <= 0) return InvalidArgumentError("-ttl must be a positive number of seconds");
      json body{{"ttl", token_ttl}};
      if (!token_spiffe_id.empty()) body["agent_id"] = token_spiffe_id;
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/agent/CreateJoinToken", body));
      if (common.output == "json") {
        out << response.dump() << "\n";
      } else {
        out << "Token: " << response.value("value", "") << "\n";
      }
      return Status::Ok();
    };
  });

  CLI::App* bundle = app.add_subcommand("bundle", "Show this trust domain's bundle and manage federated ones")
                         ->require_subcommand(1);
  std::string bundle_format = "pem";
  CLI::App* bundle_show = bundle->add_subcommand("show", "Print this trust domain's bundle");
  bundle_show->add_option("--format", bundle_format, "pem or spiffe")->check(CLI::IsMember({"pem", "spiffe"}));
  AddCommonFlags(bundle_show, common, false);
  bundle_show->callback([&] {
    action = [&](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/bundle/GetBundle", json::object()));
      out << (bundle_format == "spiffe" ? response.value("jwks", "") + "\n" : response.value("pem", ""));
      return Status::Ok();
    };
  });

  std::string bundle_id, bundle_path;
  CLI::App* bundle_list = bundle->add_subcommand("list", "List federated bundles");
  bundle_list->add_option("--id", bundle_id, "Only the bundle of this trust domain");
  bundle_list->add_option("--format", bundle_format, "pem or spiffe")->check(CLI::IsMember({"pem", "spiffe"}));
  AddCommonFlags(bundle_list, common, true);
  bundle_list->callback([&] {
    action = [&](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/bundle/ListFederatedBundles", json::object()));
      json bundles = json::array();
      for (const auto& b : response["bundles"]) {
        if (bundle_id.empty() || "spiffe://" + b.value("trust_domain", "") == bundle_id ||
            b.value("trust_domain", "") == bundle_id) {
          bundles.push_back(b);
        }
      }
      if (common.output == "json") {
        out << json{{"bundles", bundles}}.dump() << "\n";
        return Status::Ok();
      }
      for (const auto& b : bundles) {
        out << "****************************************\n* spiffe://" << b.value("trust_domain", "")
            << "\n****************************************\n"
            << (bundle_format == "spiffe" ? b.value("jwks", "") + "\n" : b.value("pem", "")) << "\n";
      }
      return Status::Ok();
    };
  });
  CLI::App* bundle_set = bundle->add_subcommand("set", "Create or replace a federated bundle");
  bundle_set->add_option("--id", bundle_id, "The trust domain the bundle belongs to")->required();
  bundle_set->add_option("--path", bundle_path, "The bundle file (default: standard input)");
  bundle_set->add_option("--format", bundle_format, "pem or spiffe")->check(CLI::IsMember({"pem", "spiffe"}));
  AddCommonFlags(bundle_set, common, false);
  bundle_set->callback([&] {
    action = [&](AdminClient& client) -> Status {
      std::string text;
      if (bundle_path.empty()) {
        std::stringstream in;
        in << std::cin.rdbuf();
        text = in.str();
      } else {
        SIGIL_ASSIGN_OR_RETURN(text, ReadWholeFile(bundle_path, "-path file"));
      }
      json item{{"trust_domain", bundle_id}, {bundle_format == "spiffe" ? "jwks" : "pem", text}};
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/bundle/BatchSetFederatedBundle", {{"bundles", {item}}}));
      const json& status = response["results"][0]["status"];
      if (status.value("code", 2) != 0) return Status(static_cast<Code>(status.value("code", 2)), status.value("message", ""));
      out << "bundle set.\n";
      return Status::Ok();
    };
  });
  CLI::App* bundle_delete = bundle->add_subcommand("delete", "Delete a federated bundle");
  bundle_delete->add_option("--id", bundle_id, "The trust domain of the bundle")->required();
  std::string delete_mode = "restrict";
  bundle_delete
      ->add_option("--mode", delete_mode,
                   "What happens to the entries that federate with it: restrict (refuse while there are any), "
                   "dissociate (they stop federating with it) or delete (they are deleted)")
      ->check(CLI::IsMember({"restrict", "dissociate", "delete"}));
  AddCommonFlags(bundle_delete, common, false);
  bundle_delete->callback([&] {
    action = [&](AdminClient& client) -> Status {
      std::string mode = delete_mode;
      std::transform(mode.begin(), mode.end(), mode.begin(), [](unsigned char c) { return std::toupper(c); });
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/bundle/BatchDeleteFederatedBundle",
                                                         {{"trust_domains", {bundle_id}}, {"mode", mode}}));
      const json& status = response["results"][0]["status"];
      if (status.value("code", 2) != 0) return Status(static_cast<Code>(status.value("code", 2)), status.value("message", ""));
      out << "bundle deleted.\n";
      return Status::Ok();
    };
  });

  AddFederationCommands(app, common, action, out, err);

  struct MintFlags {
    std::string spiffe_id, write_dir;
    int64_t ttl = 0;
    std::vector<std::string> dns, audience;
  } mint_flags;
  CLI::App* x509 = app.add_subcommand("x509", "Mint X509-SVIDs")->require_subcommand(1);
  CLI::App* x509_mint = x509->add_subcommand("mint", "Mint an X509-SVID for a new key");
  x509_mint->add_option("--spiffeID", mint_flags.spiffe_id, "The SPIFFE ID of the SVID")->required();
  x509_mint->add_option("--ttl", mint_flags.ttl, "TTL in seconds (default: the server's)");
  x509_mint->add_option("--dns", mint_flags.dns, "A DNS name; repeatable");
  x509_mint->add_option("--write", mint_flags.write_dir, "Write svid.pem, key.pem and bundle.pem into this folder");
  AddCommonFlags(x509_mint, common, false);
  x509_mint->callback([&] {
    action = [&](AdminClient& client) -> Status {
      return MintX509(client, mint_flags.spiffe_id, mint_flags.ttl, mint_flags.dns, mint_flags.write_dir, out);
    };
  });
  CLI::App* jwt = app.add_subcommand("jwt", "Mint JWT-SVIDs")->require_subcommand(1);
  CLI::App* jwt_mint = jwt->add_subcommand("mint", "Mint a JWT-SVID");
  jwt_mint->add_option("--spiffeID", mint_flags.spiffe_id, "The SPIFFE ID of the JWT-SVID")->required();
  jwt_mint->add_option("--audience", mint_flags.audience, "An audience; repeatable")->required();
  jwt_mint->add_option("--ttl", mint_flags.ttl, "TTL in seconds (default: the server's)");
  AddCommonFlags(jwt_mint, common, false);
  jwt_mint->callback([&] {
    action = [&](AdminClient& client) -> Status {
      json body{{"spiffe_id", mint_flags.spiffe_id}, {"audience", mint_flags.audience}};
      if (mint_flags.ttl > 0) body["ttl"] = mint_flags.ttl;
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call("/v1/svid/MintJWTSVID", body));
      out << response.value("token", "") << "\n";
      return Status::Ok();
    };
  });

  CLI::App* healthcheck = app.add_subcommand("healthcheck", "Check that serverd is up and ready");
  bool shallow = false, verbose = false;
  healthcheck->add_flag("--shallow", shallow, "Only check that serverd answers");
  healthcheck->add_flag("--verbose", verbose, "Say what was checked");
  AddCommonFlags(healthcheck, common, false);
  healthcheck->callback([&] {
    action = [&](AdminClient& client) -> Status {
      if (verbose) out << "Checking server health...\n";
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call(shallow ? "/v1/entry/CountEntries" : "/v1/health/Check", json::object()));
      out << "Server is healthy.\n";
      return Status::Ok();
    };
  });

  if (std::optional<int> exit_code = ParseCommandLine(app, raw_args, out, err)) return *exit_code;
  if (!action) return 1;
  auto client = connect(common.socket_path);
  if (!client.ok()) {
    err << "Error: cannot reach serverd at " << common.socket_path << ": " << client.status().message() << "\n";
    return 1;
  }
  const Status status = action(**client);
  if (!status.ok()) {
    err << "Error: " << status.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace sigil::serverd
