// A whole file read into memory, and the error a failed system call reports.
//
// core/ parses text and does no I/O of its own; this and the log are the exceptions, because
// every daemon, CLI and key store reads a file whole before it hands the text to a parser
// here, and one reader gives them all one error for a missing or unreadable file.
//
// Thread safety: any thread; each call stands alone.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "core/status.h"

namespace sigil {

// The whole of the file at `path`. NotFound "<what> <path> does not exist" when it is
// missing; otherwise the error names `what`, the path and errno's text. `what` names the file
// for an operator: "config file", "DevID certificate", "TPM key file".
Result<std::string> ReadWholeFile(const std::filesystem::path& path, std::string_view what);

// Status `code` with "<what>: <errno's text>", for the call that just failed and set errno.
Status ErrnoError(Code code, const std::string& what);

}  // namespace sigil
