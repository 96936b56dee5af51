// Key material on disk: written so that it is owner-only (0600) from its first byte and never
// half there — a temporary file, fsync, then rename over the name. The soft and TPM key stores
// keep their keys this way, and agentd its own SVID key.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"

namespace sigil::hw {

// `what` names the file in errors ("key file", "TPM key file").
Status WriteSecretFile(const std::filesystem::path& path, std::span<const uint8_t> contents,
                       std::string_view what);

// A whole file, for the files agentd keeps beside its key (certificates, bundles). NotFound
// when it does not exist; otherwise errno's text, naming `what` and the path.
Result<std::string> ReadWholeFile(const std::filesystem::path& path, std::string_view what);

// Both error paths of the key stores say the same: the operation, the path and errno's text.
Status ErrnoError(Code code, const std::string& what);

}  // namespace sigil::hw
