// A failure that repeats, logged at most once per interval with a count: the first at once,
// then one line per interval whose `failures` field counts every failure since the line
// before, itself included. A loop retrying every second, or a peer refused every second,
// would otherwise fill the log with one line each.
//
// FailureLog is one such failure; FailureLogByKey keeps one per key (the peer that failed) so
// that one peer's repeats neither hide another's nor add lines of their own.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/log.h"

namespace sigil {

class FailureLog {
 public:
  FailureLog(LogLevel level, std::string message, std::chrono::milliseconds interval)
      : level_(level), message_(std::move(message)), interval_(interval) {}

  // `fields` describe the latest failure (its error, the entry, the peer).
  void Failed(LogFields fields);
  // After a success: one info line `recovered` with how many failures it ended, when there
  // were any.
  void Succeeded(std::string_view recovered);
  // The failures counted since the last line, on a line of their own with the latest
  // failure's fields, when there are any: at shutdown, so that no count is lost.
  void Flush();

 private:
  const LogLevel level_;
  const std::string message_;
  const std::chrono::milliseconds interval_;
  std::mutex mutex_;
  uint64_t unlogged_ = 0;       // failures since the last line
  uint64_t since_success_ = 0;  // failures since the last success
  LogFields latest_;            // of the latest failure not logged
  std::chrono::steady_clock::time_point last_line_{};
};

class FailureLogByKey {
 public:
  // Keys come from peers, so at most `max_keys` have a FailureLog of their own; failures of
  // any other key share one, and the memory stays bounded whatever peers send.
  FailureLogByKey(LogLevel level, std::string message, std::chrono::milliseconds interval,
                  size_t max_keys = 4096);

  void Failed(const std::string& key, LogFields fields);
  // Flush on the log of every key.
  void Flush();

 private:
  const LogLevel level_;
  const std::string message_;
  const std::chrono::milliseconds interval_;
  const size_t max_keys_;
  std::mutex mutex_;
  // Never removed while the FailureLogByKey lives, so a pointer found under the lock stays good.
  std::map<std::string, std::unique_ptr<FailureLog>, std::less<>> by_key_;
  FailureLog other_keys_;
};

}  // namespace sigil
