#include "core/cli/command_line.h"

#include <algorithm>

#include "core/cli/version.h"
#include "core/cli_args.h"

namespace sigil {

std::string_view SigilVersion() { return SIGIL_VERSION; }

bool PrintedVersion(const std::vector<std::string>& args, std::ostream& out) {
  if (args.size() != 1 || (args[0] != "--version" && args[0] != "-version")) return false;
  out << SigilVersion() << "\n";
  return true;
}

Status CheckSubcommands(CLI::App& app, const std::vector<std::string>& args) {
  CLI::App* current = &app;
  std::string path = app.get_name();
  for (const std::string& arg : args) {
    if (arg.empty() || arg[0] == '-') break;
    auto subcommands = current->get_subcommands([](CLI::App*) { return true; });
    if (subcommands.empty()) break;
    CLI::App* next = nullptr;
    std::string names;
    for (CLI::App* sub : subcommands) {
      if (sub->get_name() == arg) next = sub;
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (next == nullptr) {
      return InvalidArgumentError("unknown command '" + path + " " + arg + "': expected " + names);
    }
    current = next;
    path += " " + arg;
  }
  return Status::Ok();
}

std::optional<int> ParseCommandLine(CLI::App& app, std::vector<std::string> args, std::ostream& out,
                                    std::ostream& err) {
  args = NormalizeGoStyleFlags(std::move(args));
  if (Status known = CheckSubcommands(app, args); !known.ok()) {
    err << "Error: " << known.message() << "\n";
    return 1;
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes them in reverse
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    // CLI11 reports bad usage by exception; it ends here as one line and an exit code.
    err << "Error: " << e.what() << "\n";
    return 1;
  }
  return std::nullopt;
}

}  // namespace sigil
