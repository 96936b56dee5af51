#include "serverd/datastore/datastore.h"

namespace sigil::serverd {

ChangeFeed::Subscription& ChangeFeed::Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    Reset();
    feed_ = std::exchange(other.feed_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

ChangeFeed::Subscription::~Subscription() { Reset(); }

void ChangeFeed::Subscription::Reset() {
  if (feed_ == nullptr) return;
  // Publish holds the mutex while a listener runs, so taking it waits for a call in flight.
  std::lock_guard lock(feed_->mutex_);
  feed_->listeners_.erase(id_);
  feed_ = nullptr;
}

ChangeFeed::Subscription ChangeFeed::Subscribe(Listener listener) {
  std::lock_guard lock(mutex_);
  const uint64_t id = next_id_++;
  listeners_.emplace(id, std::move(listener));
  return Subscription(this, id);
}

void ChangeFeed::Publish(StoreChange change) {
  std::lock_guard lock(mutex_);
  for (auto& [id, listener] : listeners_) listener(change);
}

}  // namespace sigil::serverd
