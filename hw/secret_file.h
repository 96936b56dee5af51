// Key material on disk: written so that it is owner-only (0600) from its first byte and never
// half there — a temporary file, fsync, then rename over the name. The soft and TPM key stores
// keep their keys this way, and agentd its own SVID key.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "core/file.h"
#include "core/status.h"

namespace sigil::hw {

// `what` names the file in errors ("key file", "TPM key file").
Status WriteSecretFile(const std::filesystem::path& path, std::span<const uint8_t> contents,
                       std::string_view what);

// What WriteSecretFile wrote is read back with core/file.h's ReadWholeFile.

}  // namespace sigil::hw
