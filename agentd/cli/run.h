// `agentd run -config agent.yaml [flags]`: the agent itself, until SIGINT or SIGTERM.
#pragma once

#include <string>
#include <vector>

namespace sigil::agentd {

// `args` follow "run". Returns the process's exit code.
int RunAgent(std::vector<std::string> args);

}  // namespace sigil::agentd
