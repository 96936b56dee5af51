// Files a crash must never leave half written nor lose once written: key material (the soft
// and TPM key stores' keys, mode 0600), and in agentd's data_dir its own SVID and key, its trust
// bundle and the workload SVIDs it keeps for a restart while serverd is unreachable.
//
// WriteFileDurably writes a temporary file beside the target (owner-only from its first byte
// when `mode` is 0600), fsyncs it, renames it over the target and fsyncs the directory: killed
// at any moment, the target holds the old contents or the new ones, whole, and once the call
// returns the new contents survive a power cut.
//
// Fault points, for tests of exactly that: when the environment variable SIGIL_FAULT_POINT
// names one of the points below, the process kills itself with SIGKILL there (a crash at that
// instant), or for `<fault>-rename-fails` the rename fails with EIO. Nothing else reads the
// variable; never set it outside a test. `fault` names the file's points:
//   <fault>-before-rename   the temporary file is written and synced, the target untouched
//   <fault>-rename-fails    the rename fails; the target stays as it was
//   <fault>-after-rename    the target holds the new contents, the directory is not synced
//
// Thread safety: any thread; calls for the same path must not overlap.
#pragma once

#include <filesystem>
#include <span>
#include <string_view>
#include <sys/types.h>

#include "core/status.h"

namespace sigil::hw {

// `what` names the file in errors ("agent SVID file", "TPM key file"); `fault` its fault points.
// Key material is written with mode 0600.
Status WriteFileDurably(const std::filesystem::path& path, std::span<const uint8_t> contents, mode_t mode,
                        std::string_view what, std::string_view fault = {});

// Removes `paths` that exist, then fsyncs their directory once when any was removed.
Status RemoveFilesDurably(const std::filesystem::path& dir, std::span<const std::filesystem::path> paths);

// Makes the renames and removals in `dir` survive a power cut.
Status SyncDirectory(const std::filesystem::path& dir);

}  // namespace sigil::hw
