// Parsing the command lines of serverd and agentd with CLI11, the way SPIRE's operators type
// them: Go-style flags (core/cli_args.h), an unknown subcommand named rather than CLI11's "A
// subcommand is required", help on stdout, and a usage error as one line on stderr.
//
// Thread safety: a CLI::App is used by one thread.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace sigil {

// OK, or InvalidArgument "unknown command 'serverd entry shwo': expected create, show, ..."
// for the first word of `args` that is no subcommand where `app` expects one. The command
// path starts with `app`'s name.
Status CheckSubcommands(CLI::App& app, const std::vector<std::string>& args);

// Sigil's release, as `serverd --version` and `agentd --version` print it.
std::string_view SigilVersion();

// True once `args` is exactly `--version` (or `-version`) and the release was printed to `out`,
// as SPIRE's binaries answer it.
bool PrintedVersion(const std::vector<std::string>& args, std::ostream& out);

// Parses `args` (without the program's name) into `app`. nullopt when the command is to run;
// otherwise the process's exit code: 0 once help is printed to `out`, 1 once the usage error
// is printed to `err`.
std::optional<int> ParseCommandLine(CLI::App& app, std::vector<std::string> args, std::ostream& out,
                                    std::ostream& err);

}  // namespace sigil
