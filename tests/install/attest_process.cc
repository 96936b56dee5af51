// Prints the selectors agentd's unix workload attestor gives a running process, one per line
// ("unix:uid:1001"), as agentd would with the privileges this program runs with:
//   attest_process PID UID GID
// unit_capabilities_test runs it as another user with the capabilities sigil-agent.service
// grants, and with fewer.
#include <iostream>
#include <string>
#include <vector>

#include "agentd/attestor/unix_attestor.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: attest_process PID UID GID\n";
    return 2;
  }
  sigil::agentd::UnixWorkloadAttestor attestor;
  // No supplementary groups, as a caller without any would connect.
  auto selectors = attestor.Attest(std::stoi(argv[1]), static_cast<uid_t>(std::stoul(argv[2])),
                                   static_cast<gid_t>(std::stoul(argv[3])), std::vector<gid_t>{});
  if (!selectors.ok()) {
    std::cerr << selectors.status().ToString() << "\n";
    return 1;
  }
  for (const auto& selector : *selectors) std::cout << selector.type << ":" << selector.value << "\n";
  return 0;
}
