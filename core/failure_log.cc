#include "core/failure_log.h"

namespace sigil {

void FailureLog::Failed(LogFields fields) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  ++unlogged_;
  ++since_success_;
  if (since_success_ > 1 && now - last_line_ < interval_) {
    latest_ = std::move(fields);
    return;
  }
  fields.emplace_back("failures", std::to_string(unlogged_));
  Log(level_, message_, fields);
  unlogged_ = 0;
  latest_.clear();
  last_line_ = now;
}

void FailureLog::Succeeded(std::string_view recovered) {
  std::lock_guard lock(mutex_);
  if (since_success_ == 0) return;
  LogInfo(recovered, {{"failures", std::to_string(since_success_)}});
  since_success_ = 0;
  unlogged_ = 0;
  latest_.clear();
}

void FailureLog::Flush() {
  std::lock_guard lock(mutex_);
  if (unlogged_ == 0) return;
  LogFields fields = std::move(latest_);
  fields.emplace_back("failures", std::to_string(unlogged_));
  Log(level_, message_, fields);
  unlogged_ = 0;
  latest_.clear();
  last_line_ = std::chrono::steady_clock::now();
}

FailureLogByKey::FailureLogByKey(LogLevel level, std::string message, std::chrono::milliseconds interval,
                                 size_t max_keys)
    : level_(level), message_(message), interval_(interval), max_keys_(max_keys),
      other_keys_(level, std::move(message), interval) {}

void FailureLogByKey::Failed(const std::string& key, LogFields fields) {
  FailureLog* log = &other_keys_;
  {
    std::lock_guard lock(mutex_);
    if (auto found = by_key_.find(key); found != by_key_.end()) {
      log = found->second.get();
    } else if (by_key_.size() < max_keys_) {
      log = by_key_.emplace(key, std::make_unique<FailureLog>(level_, message_, interval_)).first->second.get();
    }
  }
  log->Failed(std::move(fields));
}

void FailureLogByKey::Flush() {
  std::lock_guard lock(mutex_);
  for (auto& [key, log] : by_key_) log->Flush();
  other_keys_.Flush();
}

}  // namespace sigil
