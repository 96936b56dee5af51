#include "core/cli_args.h"

#include <cctype>

namespace sigil {

std::vector<std::string> NormalizeGoStyleFlags(std::vector<std::string> args) {
  for (std::string& arg : args) {
    if (arg.size() < 3 || arg[0] != '-' || arg[1] == '-') continue;
    if (!std::isalpha(static_cast<unsigned char>(arg[1]))) continue;
    const size_t eq = arg.find('=');
    const size_t name_length = (eq == std::string::npos ? arg.size() : eq) - 1;
    if (name_length >= 2) arg = "-" + arg;
  }
  return args;
}

}  // namespace sigil
