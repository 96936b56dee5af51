// agentd: the commands that ask a running agent over its Workload API socket (see cli.h).
//
// `agentd run`, the agent itself (attestation to serverd, entry sync, SVID rotation and the
// Workload API server), and `agentd validate`, which checks its config, are in agentd/cli/run.h.
#include <signal.h>

#include <iostream>
#include <string>
#include <vector>

#include "agentd/cli/run.h"
#include "agentd/cli/cli.h"
#include "core/cli/command_line.h"

int main(int argc, char** argv) {
  // A workload socket that closes under `api watch` is an error to report, not a signal.
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (sigil::PrintedVersion(args, std::cout)) return 0;
  if (!args.empty() && args[0] == "run") return sigil::agentd::RunAgent({args.begin() + 1, args.end()});
  if (!args.empty() && args[0] == "validate") return sigil::agentd::ValidateAgent({args.begin() + 1, args.end()});
  return sigil::agentd::RunWorkloadCommand(args, std::cout, std::cerr);
}
