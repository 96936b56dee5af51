#include "hw/heal_backoff.h"

#include <algorithm>

#include "core/log.h"

namespace sigil::hw {

Status HealBackoff::MayTry(const Status& cause) const {
  const auto now = std::chrono::steady_clock::now();
  if (now >= next_) return Status::Ok();
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_ - now);
  return UnavailableError(cause.message() + "; " + device_ + " could not be recovered (" + last_error_ +
                          "), next attempt in " + std::to_string(wait.count()) + " ms");
}

Status HealBackoff::Attempted(const Status& cause, const Status& outcome) {
  if (outcome.ok()) {
    backoff_ = std::chrono::milliseconds(0);
    next_ = {};
    LogInfo("key store recovered", {{"device", device_}, {"cause", cause.message()}});
    return Status::Ok();
  }
  backoff_ = backoff_.count() == 0 ? kFirst : std::min(2 * backoff_, kMax);
  next_ = std::chrono::steady_clock::now() + backoff_;
  last_error_ = outcome.message();
  LogWarn("key store could not be recovered; will retry",
          {{"device", device_}, {"cause", cause.message()}, {"error", outcome.message()},
           {"retry_in_ms", std::to_string(backoff_.count())}});
  return UnavailableError(cause.message() + "; " + device_ + " could not be recovered: " + outcome.message());
}

}  // namespace sigil::hw
