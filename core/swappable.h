// A value that many threads read and one now and then replaces whole: the current TLS context
// of a listener, the trust bundle a handshake checks against, the CA a signer uses, the agent's
// SVID cache. Readers take a shared_ptr to the value as it is and keep it as long as they
// need it; a writer builds the next value apart and swaps it in, so a reader never sees a value
// half made and never waits for one to be built. The mutex guards only the pointer (a copy
// under it is two atomic counts), since std::atomic<std::shared_ptr> in g++ 12 takes a lock as
// well and is one more thing for TSan to learn.
//
// Thread safety: Current and Set may be called from any thread at once.
#pragma once

#include <memory>
#include <mutex>
#include <utility>

namespace sigil {

template <typename T>
class Swappable {
 public:
  explicit Swappable(std::shared_ptr<const T> initial = nullptr) : current_(std::move(initial)) {}

  Swappable(const Swappable&) = delete;
  Swappable& operator=(const Swappable&) = delete;

  std::shared_ptr<const T> Current() const {
    std::lock_guard lock(mutex_);
    return current_;
  }

  // Readers holding the value before stay with it. Swapped rather than assigned so that the
  // old value, when this was its last holder, is freed once the lock is let go (in `next`).
  void Set(std::shared_ptr<const T> next) {
    std::lock_guard lock(mutex_);
    current_.swap(next);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const T> current_;
};

}  // namespace sigil
