// When a key store that lost its device's state (a token reset, a TPM restarted) may try to
// heal again: at once the first time, then after a back-off doubling from 100 ms to 30 s while
// attempts fail, so a device gone for good costs one attempt per half minute rather than one
// per signature, and callers meanwhile get Unavailable at once. Attempts are logged: a failure
// with the wait, a recovery after a failure or a loss.
//
// Thread safety: none; callers hold the lock that serialises healing.
#pragma once

#include <chrono>
#include <string>

#include "core/status.h"

namespace sigil::hw {

// The status of a Status or of a Result, for code that retries either.
inline Status StatusOf(const Status& status) { return status; }
template <typename T>
Status StatusOf(const Result<T>& result) {
  return result.status();
}

class HealBackoff {
 public:
  // `device` names what heals in messages ("PKCS#11 token 'sigil-ca'", "TPM on TCTI '...'").
  explicit HealBackoff(std::string device) : device_(std::move(device)) {}

  // OK when an attempt may be made now; Unavailable naming `cause`, the last attempt's error and
  // the wait otherwise.
  Status MayTry(const Status& cause) const;
  // The attempt to heal after `cause` ended with `outcome`; returns `outcome` made Unavailable
  // and naming `cause` when it failed, OK when it healed.
  Status Attempted(const Status& cause, const Status& outcome);

 private:
  static constexpr std::chrono::milliseconds kFirst{100};
  static constexpr std::chrono::milliseconds kMax{30'000};

  const std::string device_;
  std::chrono::milliseconds backoff_{0};
  std::chrono::steady_clock::time_point next_{};
  std::string last_error_;
};

}  // namespace sigil::hw
