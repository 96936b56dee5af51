#include "core/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/file.h"

namespace sigil {

namespace {

std::atomic<LogLevel> configured_level{LogLevel::kInfo};
std::atomic<LogFormat> configured_format{LogFormat::kText};
std::mutex sink_mutex;
LogSink configured_sink;
// LogToFile's file; -1 for stderr. Guarded by sink_mutex, as is the path.
int log_file_fd = -1;
std::filesystem::path log_file_path;

Result<int> OpenLogFile(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return ErrnoError(Code::kInvalidArgument, "opening log file " + path.string());
  return fd;
}

void CloseLogFileLocked() {
  if (log_file_fd >= 0) ::close(log_file_fd);
  log_file_fd = -1;
  log_file_path.clear();
}

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warning";
    case LogLevel::kError: return "error";
  }
  return "info";
}

// logfmt quotes a value when it has a space, '=', a quote or nothing at all.
std::string LogfmtValue(std::string_view value) {
  bool quote = value.empty();
  for (char c : value) quote |= (c == ' ' || c == '=' || c == '"' || c == '\n' || c == '\\');
  if (!quote) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}


}  // namespace

std::string NowRfc3339() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

Result<LogLevel> ParseLogLevel(std::string_view name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warn" || name == "warning") return LogLevel::kWarn;
  if (name == "error") return LogLevel::kError;
  return InvalidArgumentError("unknown log level '" + std::string(name) + "': expected debug, info, warn or error");
}

Result<LogFormat> ParseLogFormat(std::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return InvalidArgumentError("unknown log format '" + std::string(name) + "': expected text or json");
}

void ConfigureLogging(LogLevel level, LogFormat format, LogSink sink) {
  configured_level = level;
  configured_format = format;
  std::lock_guard lock(sink_mutex);
  configured_sink = std::move(sink);
  CloseLogFileLocked();
}

Status LogToFile(const std::filesystem::path& path) {
  SIGIL_ASSIGN_OR_RETURN(int fd, OpenLogFile(path));
  std::lock_guard lock(sink_mutex);
  CloseLogFileLocked();
  configured_sink = nullptr;
  log_file_fd = fd;
  log_file_path = path;
  return Status::Ok();
}

Result<bool> ReopenLogFile() {
  std::lock_guard lock(sink_mutex);
  if (log_file_fd < 0) return false;
  SIGIL_ASSIGN_OR_RETURN(int fd, OpenLogFile(log_file_path));
  ::close(log_file_fd);
  log_file_fd = fd;
  return true;
}

std::string FormatLogLine(LogFormat format, LogLevel level, std::string_view message,
                          const LogFields& fields, std::string_view time) {
  if (format == LogFormat::kJson) {
    nlohmann::ordered_json line;
    line["time"] = time;
    line["level"] = LevelName(level);
    line["msg"] = message;
    for (const auto& [key, value] : fields) line[key] = value;
    // Invalid UTF-8 in a value is replaced rather than failing the log call.
    return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  std::string line = "time=" + std::string(time) + " level=" + std::string(LevelName(level)) +
                     " msg=" + LogfmtValue(message);
  for (const auto& [key, value] : fields) line += " " + key + "=" + LogfmtValue(value);
  return line + "\n";
}

void Log(LogLevel level, std::string_view message, const LogFields& fields) {
  if (level < configured_level.load(std::memory_order_relaxed)) return;
  const std::string line = FormatLogLine(configured_format.load(std::memory_order_relaxed), level, message,
                                         fields, NowRfc3339());
  std::lock_guard lock(sink_mutex);
  if (configured_sink) {
    configured_sink(line);
    return;
  }
  // One write per line: stderr is unbuffered, the file is opened O_APPEND, and lines stay whole.
  const int fd = log_file_fd >= 0 ? log_file_fd : STDERR_FILENO;
  [[maybe_unused]] const ssize_t written = ::write(fd, line.data(), line.size());
}

}  // namespace sigil
