// Log lines in SPIRE's two shapes: logfmt text (time=... level=info msg="..." key=value) or
// one JSON object per line. The daemons choose level and format from config at start.
//
// The one piece of I/O in core/: a line goes to the configured sink (stderr by default, or the
// daemon's log_file) in a single write, so lines from several threads never interleave. Never
// log a secret: PINs, join tokens and keys stay out of fields and messages.
//
// Thread safety: Log may be called from any thread; Configure before other threads log.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace sigil {

enum class LogLevel { kDebug, kInfo, kWarn, kError };
enum class LogFormat { kText, kJson };

// The time a log line carries: 2026-12-05T03:36:21Z.
std::string NowRfc3339();

Result<LogLevel> ParseLogLevel(std::string_view name);  // debug, info, warn, error
Result<LogFormat> ParseLogFormat(std::string_view name);  // text, json

using LogFields = std::vector<std::pair<std::string, std::string>>;
using LogSink = std::function<void(std::string_view line)>;  // `line` ends with '\n'

// `sink` null: stderr. Closes the file of LogToFile, if any.
void ConfigureLogging(LogLevel level, LogFormat format, LogSink sink = nullptr);

// Writes every line to the file at `path` instead of stderr, appended, the file made 0640 when
// new (as SPIRE opens its log_file), until ConfigureLogging is called again. The error names
// the path; logging is unchanged then.
Status LogToFile(const std::filesystem::path& path);

// Opens the path given to LogToFile again and writes to it from the next line on, so that once
// logrotate has renamed the file a new one is made under the old name. When it cannot be
// opened, lines keep going to the file already open and the error names the path. True once
// reopened; false, with nothing done, when logging goes elsewhere.
Result<bool> ReopenLogFile();

void Log(LogLevel level, std::string_view message, const LogFields& fields = {});
inline void LogDebug(std::string_view m, const LogFields& f = {}) { Log(LogLevel::kDebug, m, f); }
inline void LogInfo(std::string_view m, const LogFields& f = {}) { Log(LogLevel::kInfo, m, f); }
inline void LogWarn(std::string_view m, const LogFields& f = {}) { Log(LogLevel::kWarn, m, f); }
inline void LogError(std::string_view m, const LogFields& f = {}) { Log(LogLevel::kError, m, f); }

// The line Log would write, without writing it: for tests and for the CLI's own errors.
std::string FormatLogLine(LogFormat format, LogLevel level, std::string_view message,
                          const LogFields& fields, std::string_view time);

}  // namespace sigil
