// `serverd entry create|show|update|delete|count`, with the flags, filters and output of
// `spire-server entry`.
#include <array>
#include <memory>

#include "core/registration_entry.h"
#include "core/selector.h"
#include "serverd/admin/cli_flags.h"
#include "serverd/admin/entry_json.h"

namespace sigil::serverd {
namespace {

using nlohmann::json;

std::string TtlText(const json& ttl) {
  const int64_t seconds = ttl.is_number_integer() ? ttl.get<int64_t>() : 0;
  return seconds == 0 ? "default" : std::to_string(seconds);
}

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
  if (const std::string expiry = TimeText(e.value("expires_at", json("0"))); !expiry.empty())
    row("Expiration time", expiry);
  for (const auto& s : e["selectors"])
    row("Selector", s.value("type", "") + ":" + s.value("value", ""));
  for (const auto& f : e["federates_with"]) row("FederatesWith", f.get<std::string>());
  for (const auto& d : e["dns_names"]) row("DNS name", d.get<std::string>());
  if (e.value("admin", false)) row("Admin", "true");
  if (!e.value("hint", "").empty()) row("Hint", e.value("hint", ""));
  if (const std::string created = TimeText(e.value("created_at", json("0"))); !created.empty())
    row("Created At", created);
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
  bool downstream = false;
  int64_t entry_expiry = 0;
  std::string hint;
  bool node = false;
  std::string data_path;
  // Set when the flag of the kUnsupportedEntryFields at the same position is given.
  std::array<bool, std::size(kUnsupportedEntryFields)> unsupported{};
};

void AddEntryFlags(CLI::App* command, EntryFlags& f, bool update) {
  command->add_option(
      "--entryID", f.entry_id,
      update ? "The ID of the entry to update"
             : "A custom ID for this entry (a-z A-Z 0-9 - . _); without it the server makes one");
  command->add_option("--spiffeID", f.spiffe_id, "The SPIFFE ID this entry issues");
  command->add_option("--parentID", f.parent_id, "The SPIFFE ID of this entry's parent");
  command->add_option("--selector", f.selectors,
                      "A colon-delimited type:value selector; repeatable");
  command->add_option("--x509SVIDTTL", f.x509_svid_ttl,
                      "The TTL of X509-SVIDs issued for this entry, in seconds");
  command->add_option("--jwtSVIDTTL", f.jwt_svid_ttl,
                      "The TTL of JWT-SVIDs issued for this entry, in seconds");
  command->add_option("--dns", f.dns_names, "A DNS name for the X509-SVID; repeatable");
  command->add_option("--federatesWith", f.federates_with,
                      "A trust domain to federate with; repeatable");
  command->add_flag("--downstream", f.downstream, "Make the workload a downstream CA");
  command->add_option("--entryExpiry", f.entry_expiry, "When the entry expires, in Unix seconds");
  command->add_option("--hint", f.hint, "A hint for workloads that get several SVIDs");
  if (!update)
    command->add_flag("--node", f.node, "Make the entry a node alias (parented to the server)");
  command->add_option("--data", f.data_path,
                      std::string("A JSON file of entries ({\"entries\": [...]}) to ") +
                          (update ? "update" : "create") +
                          " at once, each with its ID; '-' reads standard input");
  for (size_t i = 0; i < std::size(kUnsupportedEntryFields); ++i) {
    command->add_flag(std::string("-") + kUnsupportedEntryFields[i].flag, f.unsupported[i],
                      std::string("Refused: ") + kUnsupportedEntryFields[i].why);
  }
}

// The flags given to `command` that describe an entry, which -data cannot be combined with.
std::string EntryFlagsGiven(const CLI::App* command) {
  std::string given;
  for (const CLI::Option* option : command->get_options()) {
    const std::string name = option->get_name();
    if (option->count() == 0 || name == "--data" || name == "--socketPath" || name == "--output" ||
        name == "--help") {
      continue;
    }
    given += (given.empty() ? "" : ", ") + name.substr(1);
  }
  return given;
}

Result<RegistrationEntry> EntryFromFlags(const EntryFlags& f, bool update) {
  for (size_t i = 0; i < std::size(kUnsupportedEntryFields); ++i) {
    if (f.unsupported[i])
      return UnsupportedEntryFieldError(kUnsupportedEntryFields[i],
                                        kUnsupportedEntryFields[i].flag);
  }
  RegistrationEntry e;
  e.id = f.entry_id;
  e.spiffe_id = f.spiffe_id;
  e.parent_id = f.parent_id;
  std::string missing;
  if (update && e.id.empty()) missing += " -entryID";
  if (e.spiffe_id.empty()) missing += " -spiffeID";
  if (e.parent_id.empty() && !f.node) missing += update ? " -parentID" : " -parentID (or -node)";
  if (f.selectors.empty()) missing += " -selector";
  if (!missing.empty()) {
    return InvalidArgumentError(std::string(update ? "entry update" : "entry create") + " needs" +
                                missing + " (or -data)");
  }
  if (f.node && !e.parent_id.empty())
    return InvalidArgumentError("-node and -parentID cannot both be given");
  if (f.node) {
    // A node alias hangs off the server of the entry's own trust domain.
    SIGIL_ASSIGN_OR_RETURN(SpiffeId id, SpiffeIdFlag("-spiffeID", e.spiffe_id));
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
  e.downstream = f.downstream;
  e.expires_at = f.entry_expiry;
  e.hint = f.hint;
  return e;
}

// SPIFFE's own advice calls an entry that selects a binary (unix:path, unix:sha256) and no
// user weak: any local user who can run that binary — or exec it from a process they started,
// in the window Linux leaves between connect and accept — receives its identity.
void WarnOfBinaryWithoutUser(std::ostream& err, const RegistrationEntry& entry) {
  bool names_binary = false;
  bool names_user = false;
  for (const Selector& selector : entry.selectors) {
    if (selector.type != "unix") continue;
    names_binary = names_binary || selector.value.starts_with("path:") ||
                   selector.value.starts_with("sha256:");
    names_user = names_user || selector.value.starts_with("uid:") ||
                 selector.value.starts_with("gid:") || selector.value.starts_with("user:") ||
                 selector.value.starts_with("group:");
  }
  if (names_binary && !names_user) {
    err << "Warning: entry for " << entry.spiffe_id
        << " selects a binary (unix:path or unix:sha256) without unix:uid or unix:gid; any local "
           "user who can run "
           "that binary receives its identity. Add unix:uid or unix:gid.\n";
  }
}

// The entries a create or update sends: those of the -data file, or the one the flags describe.
Result<json> EntriesToSend(const CLI::App* command, const EntryFlags& f, bool update,
                           std::ostream& err) {
  std::vector<RegistrationEntry> entries;
  if (!f.data_path.empty()) {
    if (const std::string given = EntryFlagsGiven(command); !given.empty()) {
      return InvalidArgumentError("-data cannot be combined with " + given +
                                  ": the file describes the entries");
    }
    SIGIL_ASSIGN_OR_RETURN(std::string text, ReadInput(f.data_path, "-data file"));
    SIGIL_ASSIGN_OR_RETURN(entries, EntriesFromDataFile(text, InputName(f.data_path)));
  } else {
    SIGIL_ASSIGN_OR_RETURN(RegistrationEntry e, EntryFromFlags(f, update));
    entries.push_back(std::move(e));
  }
  json items = json::array();
  for (const RegistrationEntry& e : entries) {
    WarnOfBinaryWithoutUser(err, e);
    items.push_back(EntryToJson(e));
  }
  return items;
}

// The per-item results of a batch call: prints each entry written; a single failure is the
// command's error, several are listed one per line and summed up.
Status PrintBatch(std::ostream& out, std::ostream& err, const json& response,
                  const CommonFlags& common) {
  if (common.output == "json") out << response.dump() << "\n";
  const json& results = response["results"];
  std::vector<Status> failures;
  for (size_t i = 0; i < results.size(); ++i) {
    const json& result = results[i];
    if (Status status = ItemStatus(result["status"]); !status.ok()) {
      failures.push_back(std::move(status));
      if (results.size() > 1)
        err << "Error: entry " << i + 1 << ": " << failures.back().message() << "\n";
    } else if (common.output != "json" && result.contains("entry")) {
      PrintEntry(out, result["entry"]);
    }
  }
  if (failures.empty()) return Status::Ok();
  if (results.size() == 1) return failures.front();
  return Status(failures.front().code(), std::to_string(failures.size()) + " of " +
                                             std::to_string(results.size()) + " entries failed");
}

void AddWriteCommand(CLI::App* entry, bool update, CommonFlags& common, AdminAction& action,
                     std::ostream& out, std::ostream& err) {
  auto flags = std::make_shared<EntryFlags>();
  CLI::App* command =
      entry->add_subcommand(update ? "update" : "create",
                            update ? "Update registration entries" : "Create registration entries");
  AddEntryFlags(command, *flags, update);
  AddCommonFlags(command, common, true);
  command->callback([&, command, flags, update] {
    action = [&, command, flags, update](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(json entries, EntriesToSend(command, *flags, update, err));
      SIGIL_ASSIGN_OR_RETURN(json response, client.Call(update ? "/v1/entry/BatchUpdateEntry"
                                                               : "/v1/entry/BatchCreateEntry",
                                                        {{"entries", entries}}));
      return PrintBatch(out, err, response, common);
    };
  });
}

// The filter flags of `entry show` and `entry count`, SPIRE's.
struct FilterFlags {
  std::string entry_id, spiffe_id, parent_id, hint;
  std::string match_selectors = "superset", match_federates_with = "superset";
  std::vector<std::string> selectors, federates_with;
  bool downstream = false;
};

void AddFilterFlags(CLI::App* command, FilterFlags& f, const char* verb) {
  const std::string which = std::string(" of the entries to ") + verb;
  command->add_option("--spiffeID", f.spiffe_id, "The SPIFFE ID" + which);
  command->add_option("--parentID", f.parent_id, "The parent ID" + which);
  command->add_option("--selector", f.selectors,
                      "A colon-delimited type:value selector" + which + "; repeatable");
  command
      ->add_option("--matchSelectorsOn", f.match_selectors,
                   "How -selector matches: exact, subset, superset or any")
      ->check(CLI::IsMember({"exact", "subset", "superset", "any"}));
  command->add_option("--federatesWith", f.federates_with,
                      "A trust domain the entries federate with; repeatable");
  command
      ->add_option("--matchFederatesWithOn", f.match_federates_with,
                   "How -federatesWith matches: exact, subset, superset or any")
      ->check(CLI::IsMember({"exact", "subset", "superset", "any"}));
  command->add_flag("--downstream", f.downstream, "Only downstream entries");
  command->add_option("--hint", f.hint, "The hint" + which);
}

Result<json> FilterJson(const FilterFlags& f) {
  json filter = json::object();
  if (!f.spiffe_id.empty()) {
    SIGIL_ASSIGN_OR_RETURN(SpiffeId id, SpiffeIdFlag("-spiffeID", f.spiffe_id));
    filter["by_spiffe_id"] = SpiffeIdToJson(id.str());
  }
  if (!f.parent_id.empty()) {
    SIGIL_ASSIGN_OR_RETURN(SpiffeId id, SpiffeIdFlag("-parentID", f.parent_id));
    filter["by_parent_id"] = SpiffeIdToJson(id.str());
  }
  if (!f.selectors.empty()) {
    SIGIL_ASSIGN_OR_RETURN(json selectors, SelectorsFlag(f.selectors));
    filter["by_selectors"] = {{"selectors", selectors}, {"match", MatchName(f.match_selectors)}};
  }
  if (!f.federates_with.empty()) {
    json names = json::array();
    for (const std::string& text : f.federates_with) {
      auto td = TrustDomain::Parse(text);
      if (!td.ok())
        return InvalidArgumentError("-federatesWith '" + text + "': " + td.status().message());
      names.push_back(td->name());
    }
    filter["by_federates_with"] = {{"trust_domains", names},
                                   {"match", MatchName(f.match_federates_with)}};
  }
  if (f.downstream) filter["by_downstream"] = true;
  if (!f.hint.empty()) filter["by_hint"] = f.hint;
  return filter;
}

void AddShowCommand(CLI::App* entry, CommonFlags& common, AdminAction& action, std::ostream& out) {
  auto flags = std::make_shared<FilterFlags>();
  CLI::App* show = entry->add_subcommand("show", "Show registration entries");
  show->add_option("--entryID", flags->entry_id, "Show only the entry with this ID");
  AddFilterFlags(show, *flags, "show");
  AddCommonFlags(show, common, true);
  show->callback([&, flags] {
    action = [&, flags](AdminClient& client) -> Status {
      json entries = json::array();
      if (!flags->entry_id.empty()) {
        if (!flags->spiffe_id.empty() || !flags->parent_id.empty() || !flags->selectors.empty()) {
          return InvalidArgumentError("the -entryID flag can't be combined with others");
        }
        SIGIL_ASSIGN_OR_RETURN(json e,
                               client.Call("/v1/entry/GetEntry", {{"id", flags->entry_id}}));
        entries.push_back(e);
      } else {
        SIGIL_ASSIGN_OR_RETURN(json filter, FilterJson(*flags));
        SIGIL_ASSIGN_OR_RETURN(json response,
                               client.Call("/v1/entry/ListEntries", {{"filter", filter}}));
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
}

void AddCountCommand(CLI::App* entry, CommonFlags& common, AdminAction& action, std::ostream& out) {
  auto flags = std::make_shared<FilterFlags>();
  CLI::App* count = entry->add_subcommand("count", "Count registration entries");
  AddFilterFlags(count, *flags, "count");
  AddCommonFlags(count, common, true);
  count->callback([&, flags] {
    action = [&, flags](AdminClient& client) -> Status {
      SIGIL_ASSIGN_OR_RETURN(json filter, FilterJson(*flags));
      SIGIL_ASSIGN_OR_RETURN(json response,
                             client.Call("/v1/entry/CountEntries", {{"filter", filter}}));
      if (common.output == "json") {
        out << response.dump() << "\n";
      } else {
        const int64_t n = response.value("count", 0);
        out << n << (n == 1 ? " registration entry" : " registration entries") << "\n";
      }
      return Status::Ok();
    };
  });
}

// SPIRE's -file: a BatchDeleteEntryRequest, {"ids": [...]}.
Result<std::vector<std::string>> IdsFromFile(const std::string& path) {
  SIGIL_ASSIGN_OR_RETURN(std::string text, ReadInput(path, "-file"));
  const json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return InvalidArgumentError(InputName(path) + " is not valid JSON");
  auto ids = StringListFromJson(document, "ids");
  if (!ids.ok()) return InvalidArgumentError(InputName(path) + ": " + ids.status().message());
  return ids;
}

// As SPIRE: each entry deleted on standard output, each refused on the error stream, a summary.
Status PrintDeleted(std::ostream& out, std::ostream& err, const json& response) {
  size_t deleted = 0, failed = 0;
  for (const json& result : response["results"]) {
    if (ItemStatus(result["status"]).ok()) {
      out << "Deleted entry with ID: " << result.value("id", "") << "\n";
      ++deleted;
    }
  }
  if (deleted > 0) out << "\n\n";
  for (const json& result : response["results"]) {
    const Status status = ItemStatus(result["status"]);
    if (status.ok()) continue;
    err << "Failed to delete entry with ID " << result.value("id", "")
        << " (code: " << GoCodeName(status.code()) << ", msg: \"" << status.message() << "\")\n";
    ++failed;
  }
  if (failed == 0) {
    out << "Deleted " << deleted << " entries successfully\n";
    return Status::Ok();
  }
  out << (deleted == 0 ? "Failed to delete " + std::to_string(failed) + " entries"
                       : "Deleted " + std::to_string(deleted) +
                             " entries successfully, but failed to delete " +
                             std::to_string(failed) + " entries")
      << "\n";
  return InvalidArgumentError("failed to delete one or more entries");
}

void AddDeleteCommand(CLI::App* entry, CommonFlags& common, AdminAction& action, std::ostream& out,
                      std::ostream& err) {
  struct Flags {
    std::string entry_id, file;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* remove = entry->add_subcommand("delete", "Delete registration entries");
  remove->add_option("--entryID", flags->entry_id, "The ID of the entry to delete");
  remove->add_option(
      "--file", flags->file,
      "A JSON file of the IDs to delete at once ({\"ids\": [...]}); '-' reads standard input");
  AddCommonFlags(remove, common, true);
  remove->callback([&, flags] {
    action = [&, flags](AdminClient& client) -> Status {
      std::vector<std::string> ids;
      if (!flags->file.empty()) {
        if (!flags->entry_id.empty())
          return InvalidArgumentError("-entryID and -file cannot both be given");
        SIGIL_ASSIGN_OR_RETURN(ids, IdsFromFile(flags->file));
      } else if (!flags->entry_id.empty()) {
        ids.push_back(flags->entry_id);
      } else {
        return InvalidArgumentError("entry delete needs -entryID or -file");
      }
      SIGIL_ASSIGN_OR_RETURN(json response,
                             client.Call("/v1/entry/BatchDeleteEntry", {{"ids", ids}}));
      if (common.output != "json") return PrintDeleted(out, err, response);
      out << response.dump() << "\n";
      for (const json& result : response["results"])
        SIGIL_RETURN_IF_ERROR(ItemStatus(result["status"]));
      return Status::Ok();
    };
  });
}

}  // namespace

void AddEntryCommands(CLI::App& app, CommonFlags& common, AdminAction& action, std::ostream& out,
                      std::ostream& err) {
  CLI::App* entry =
      app.add_subcommand("entry", "Manage registration entries")->require_subcommand(1);
  AddWriteCommand(entry, /*update=*/false, common, action, out, err);
  AddShowCommand(entry, common, action, out);
  AddWriteCommand(entry, /*update=*/true, common, action, out, err);
  AddDeleteCommand(entry, common, action, out, err);
  AddCountCommand(entry, common, action, out);
}

}  // namespace sigil::serverd
