// The `agentd` commands that ask a running agent over its Workload API socket, with the verbs,
// flags and output of spire-agent:
//   agentd api fetch [x509] [-socketPath P] [-write DIR] [-timeout 5s] [-silent] [-output json]
//   agentd api fetch jwt -audience A [-audience B] [-spiffeID ID] [-socketPath P] [-timeout 5s]
//                        [-output json]
//   agentd api watch [-socketPath P]
//   agentd api validate jwt -audience A -svid TOKEN [-socketPath P] [-timeout 5s] [-output json]
//   agentd healthcheck [-socketPath P] [-shallow] [-verbose]
// -output json prints the Workload API's answer as spire-agent does (output.h).
// Without -socketPath the socket is SPIFFE_ENDPOINT_SOCKET (unix:///path or unix:path), else
// kDefaultWorkloadSocket. An error prints to `err` and the command exits non-zero.
//
// `agentd run`, the agent itself, is dispatched by main before these.
#pragma once

#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "agentd/cli/go_duration.h"
#include "core/status.h"
#include "transport/socket_stream.h"

namespace sigil::agentd {

// Runs one command; `args` excludes the program name. Returns the exit code.
int RunWorkloadCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The socket a command talks to: `socket_path` when given, else `endpoint_env` (the value of
// SPIFFE_ENDPOINT_SOCKET), else the default socket.
Result<transport::Endpoint> WorkloadEndpoint(const std::string& socket_path,
                                             const char* endpoint_env);


}  // namespace sigil::agentd
