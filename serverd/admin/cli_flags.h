// What the `serverd` admin commands share: the flags every one takes and the action a parsed
// command leaves to run against the admin socket.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <ostream>
#include <string>

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

// `serverd federation create|list|show|update|delete|refresh` and `serverd bundle history`
// (in federation_cli.cc).
void AddFederationCommands(CLI::App& app, CommonFlags& common, AdminAction& action, std::ostream& out,
                           std::ostream& err);

// A Unix time (a number, or a string as SPIRE's JSON has int64s) as SPIRE's CLI prints it;
// empty for 0.
std::string TimeText(const nlohmann::json& unix_seconds);

}  // namespace sigil::serverd
