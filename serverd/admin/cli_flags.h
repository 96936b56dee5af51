// What the `serverd` admin commands share: the flags every one takes, the action a parsed
// command leaves to run against the admin socket, and the readers and printers more than one
// noun's commands use. Each noun's commands live in a file of their own (entry_cli.cc,
// agent_cli.cc, bundle_cli.cc, mint_cli.cc, federation_cli.cc, localauthority_cli.cc); their
// flags are owned by the commands' callbacks, so they live as long as the CLI::App.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "core/spiffe_id.h"
#include "core/status.h"
#include "serverd/admin/admin_client.h"
#include "serverd/admin/cli.h"

namespace sigil::serverd {

struct CommonFlags {
  std::string socket_path = kDefaultAdminSocket;
  std::string output = "pretty";  // or "json"
};

// -socketPath, and -output when the command prints something read.
void AddCommonFlags(CLI::App* command, CommonFlags& common, bool has_output);

using AdminAction = std::function<Status(AdminClient&)>;

// `serverd entry create|show|update|delete|count`.
void AddEntryCommands(CLI::App& app, CommonFlags& common, AdminAction& action, std::ostream& out, std::ostream& err);
// `serverd agent list|show|evict|ban|count|purge` and `serverd token generate`.
void AddAgentCommands(CLI::App& app, CommonFlags& common, AdminAction& action, std::ostream& out, std::ostream& err);
// `serverd bundle show|list|set|delete|count`.
void AddBundleCommands(CLI::App& app, CommonFlags& common, AdminAction& action, std::ostream& out);
// `serverd x509 mint` and `serverd jwt mint`.
void AddMintCommands(CLI::App& app, CommonFlags& common, AdminAction& action, std::ostream& out);
// `serverd federation create|list|show|update|delete|refresh` and `serverd bundle history`
// (after AddBundleCommands).
void AddFederationCommands(CLI::App& app, CommonFlags& common, AdminAction& action, std::ostream& out,
                           std::ostream& err);

// `serverd localauthority x509|jwt show|prepare|activate|taint|revoke`.
void AddLocalAuthorityCommands(CLI::App& app, CommonFlags& common, AdminAction& action, std::ostream& out);
// A Unix time (a number, or a string as SPIRE's JSON has int64s) as SPIRE's CLI prints it;
// empty for 0.
std::string TimeText(const nlohmann::json& unix_seconds);

// The whole of the file at `path`, or of standard input when `path` is "-", as SPIRE's -data
// and -file read them. `what` names the flag for errors ("-data file").
Result<std::string> ReadInput(const std::string& path, std::string_view what);
// How messages name what ReadInput read: the path, or "standard input".
std::string InputName(const std::string& path);

// A SPIFFE ID as SPIRE's JSON has it ({"trust_domain", "path"}) or as a string, as text.
std::string IdString(const nlohmann::json& id);
// The value of a SPIFFE ID flag; InvalidArgument naming the flag, the value and what is wrong.
Result<SpiffeId> SpiffeIdFlag(std::string_view flag, const std::string& value);
// -selector values as SPIRE's JSON: [{"type", "value"}].
Result<nlohmann::json> SelectorsFlag(const std::vector<std::string>& texts);
// The CLI's match mode ("superset") as SPIRE's API spells it ("MATCH_SUPERSET").
std::string MatchName(std::string mode);

// One item's {"code", "message"} of a batch response as a Status.
Status ItemStatus(const nlohmann::json& status);
// gRPC-Go's name of a code, as SPIRE prints it ("AlreadyExists").
std::string GoCodeName(Code code);

}  // namespace sigil::serverd
