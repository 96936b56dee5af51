// The `serverd` command line, with SPIRE's verbs and flags:
//   serverd entry create|show|update|delete|count …
//   serverd agent list|show|evict|ban|count|purge …
//   serverd token generate [-spiffeID ID] [-ttl SECONDS]
//   serverd bundle show|list|set|delete|count|history, federation …, x509 mint, jwt mint,
//   localauthority x509|jwt show|prepare|activate|taint|revoke, healthcheck
// Every command takes -socketPath; where SPIRE's takes -output pretty|json, so does Sigil's,
// printing SPIRE's JSON. An error prints one line to `err` and the command exits non-zero.
//
// `run` and the commands that need certificates are added by the daemon's main.
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "serverd/admin/admin_client.h"

namespace sigil::serverd {

// Connects to the admin socket at the given path.
using AdminConnector = std::function<Result<std::unique_ptr<AdminClient>>(const std::string& socket_path)>;

inline constexpr char kDefaultAdminSocket[] = "/tmp/sigil-server/private/api.sock";

// Runs the admin commands. `args` excludes the program name. Returns the exit code.
int RunAdminCommand(const std::vector<std::string>& args, const AdminConnector& connect, std::ostream& out,
                    std::ostream& err);

}  // namespace sigil::serverd
