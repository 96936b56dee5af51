#include "serverd/admin/cli.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <iostream>
#include <memory>
#include <sstream>

#include "core/cli/command_line.h"
#include "core/file.h"
#include "core/selector.h"
#include "serverd/admin/cli_flags.h"

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
  // What is not a time a gmtime can hold is printed as it came rather than stopping a listing.
  const std::time_t t = seconds;
  std::tm utc{};
  if (gmtime_r(&t, &utc) == nullptr) return std::to_string(seconds);
  char buffer[64];
  if (std::strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M:%S +0000 UTC", &utc) == 0)
    return std::to_string(seconds);
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

Result<std::string> ReadInput(const std::string& path, std::string_view what) {
  if (path != "-") return ReadWholeFile(path, what);
  std::stringstream in;
  in << std::cin.rdbuf();
  if (std::cin.bad())
    return InvalidArgumentError(std::string(what) + ": standard input could not be read");
  return in.str();
}

std::string InputName(const std::string& path) { return path == "-" ? "standard input" : path; }

std::string IdString(const json& id) {
  if (id.is_string()) return id.get<std::string>();
  if (id.is_object()) return "spiffe://" + id.value("trust_domain", "") + id.value("path", "");
  return "";
}

Result<SpiffeId> SpiffeIdFlag(std::string_view flag, const std::string& value) {
  auto id = SpiffeId::Parse(value);
  if (!id.ok())
    return InvalidArgumentError(std::string(flag) + " '" + value + "': " + id.status().message());
  return id;
}

Result<json> SelectorsFlag(const std::vector<std::string>& texts) {
  json selectors = json::array();
  for (const std::string& text : texts) {
    SIGIL_ASSIGN_OR_RETURN(Selector s, Selector::Parse(text));
    selectors.push_back({{"type", s.type}, {"value", s.value}});
  }
  return selectors;
}

std::string MatchName(std::string mode) {
  std::transform(mode.begin(), mode.end(), mode.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  return "MATCH_" + mode;
}

Status ItemStatus(const json& status) {
  const int code = status.value("code", 2);
  if (code == 0) return Status::Ok();
  return Status(static_cast<Code>(code), status.value("message", "failed"));
}

std::string GoCodeName(Code code) {
  if (code == Code::kCancelled) return "Canceled";
  std::string name;
  bool upper = true;
  for (char c : CodeName(code)) {
    if (c == '_') {
      upper = true;
      continue;
    }
    name += upper ? c : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    upper = false;
  }
  return name == "Ok" ? "OK" : name;
}

namespace {

void AddHealthcheckCommand(CLI::App& app, CommonFlags& common, AdminAction& action,
                           std::ostream& out) {
  struct Flags {
    bool shallow = false;
    bool verbose = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* healthcheck = app.add_subcommand("healthcheck", "Check that serverd is up and ready");
  healthcheck->add_flag("--shallow", flags->shallow, "Only check that serverd answers");
  healthcheck->add_flag("--verbose", flags->verbose, "Say what was checked");
  AddCommonFlags(healthcheck, common, false);
  healthcheck->callback([&, flags] {
    action = [&out, flags](AdminClient& client) -> Status {
      if (flags->verbose) out << "Checking server health...\n";
      SIGIL_ASSIGN_OR_RETURN(
          json response, client.Call(flags->shallow ? "/v1/entry/CountEntries" : "/v1/health/Check",
                                     json::object()));
      out << "Server is healthy.\n";
      return Status::Ok();
    };
  });
}

}  // namespace

int RunAdminCommand(const std::vector<std::string>& raw_args, const AdminConnector& connect,
                    std::ostream& out, std::ostream& err) {
  CLI::App app{"serverd administration commands", "serverd"};
  app.require_subcommand(1);
  CommonFlags common;
  AdminAction action;
  AddEntryCommands(app, common, action, out, err);
  AddAgentCommands(app, common, action, out, err);
  AddBundleCommands(app, common, action, out);
  AddFederationCommands(app, common, action, out, err);
  AddMintCommands(app, common, action, out);
  AddLocalAuthorityCommands(app, common, action, out);
  AddHealthcheckCommand(app, common, action, out);

  if (std::optional<int> exit_code = ParseCommandLine(app, raw_args, out, err)) return *exit_code;
  if (!action) return 1;
  auto client = connect(common.socket_path);
  if (!client.ok()) {
    err << "Error: cannot reach serverd at " << common.socket_path << ": "
        << client.status().message() << "\n";
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
