// `agentd run -config agent.yaml [flags]`: the agent itself, until SIGINT or SIGTERM; and
// `agentd validate` with the same flags, which checks the config and starts nothing.
#pragma once

#include <string>
#include <vector>

namespace sigil::agentd {

// `args` follow "run". Returns the process's exit code.
int RunAgent(std::vector<std::string> args);
int ValidateAgent(std::vector<std::string> args);

}  // namespace sigil::agentd
