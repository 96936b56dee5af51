// The directories a daemon keeps its sockets and its state in, made so that no other local
// user can have prepared them.
//
// A user who creates `/tmp/sigil-agent/public` before agentd starts owns the folder agentd then
// binds its socket in: they can swap the socket and receive every workload's call (and root's
// `agentd api fetch`). So before a daemon uses a directory it checks the directory and every
// directory above it (and every symbolic link on the way, and where the links lead):
//
//   trusted   owned by root or by the daemon's own user, and writable by no one else;
//             or owned by root and sticky (/tmp), where others may add entries but may not
//             rename or remove the daemon's.
//
// Anything else is refused with FailedPrecondition naming the directory, who owns it, its mode,
// and the fix. Missing directories are created with `create_mode` (a directory that already
// exists keeps its mode unless the caller sets one). What stays open: a directory that is
// trusted now can be loosened by its owner later — that is root or the daemon itself.
//
// Thread safety: a plain function of the filesystem; call it at start, off any event loop.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string_view>

#include "core/status.h"

namespace sigil::transport {

// Creates `dir` (and missing parents, each with `create_mode`) unless it exists, then checks it
// and everything above it as described above. `what` names the directory in errors
// ("data_dir", "Workload API socket directory"). An empty `dir` is the current directory (the
// folder of a socket path given without one).
Status EnsureOwnedDirectory(const std::filesystem::path& dir, mode_t create_mode, std::string_view what);

}  // namespace sigil::transport
