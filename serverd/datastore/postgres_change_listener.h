// Carries PostgreSQL's notifications to the store's change feed. The schema's triggers send a
// NOTIFY on channel sigil_changes with every commit that writes entries (the revision row),
// bundles, federation relationships or the CA journal, whichever replica made it; this listener
// holds one connection of its own that LISTENs, and publishes each notification it hears.
//
// Why notifications and not polling: every replica learns of a change within a round trip of its
// commit, and an idle fleet costs the database nothing. They are lost while the connection is
// down, so after connecting (again) the listener publishes every kind of change once; the
// subscribers' own slow resync is the net under that.
//
// Thread safety: a thread of its own, stopped and joined by the destructor.
#pragma once

#include <atomic>
#include <thread>

#include "serverd/datastore/datastore.h"
#include "serverd/datastore/postgres_connection.h"

namespace sigil::serverd::pg {

inline constexpr const char* kChangeChannel = "sigil_changes";

class ChangeListener {
 public:
  ChangeListener(Pool& pool, ChangeFeed& feed);
  ~ChangeListener();
  ChangeListener(const ChangeListener&) = delete;
  ChangeListener& operator=(const ChangeListener&) = delete;

 private:
  void Run();
  // Hears notifications on `connection` until it breaks (false) or the listener stops (true).
  bool Listen(Connection& connection);
  // Waits `duration`, or less when the listener stops; true when stopping.
  bool SleepUnlessStopped(std::chrono::milliseconds duration);

  Pool& pool_;
  ChangeFeed& feed_;
  int stop_fd_ = -1;  // an eventfd: written once to stop
  std::thread thread_;
};

}  // namespace sigil::serverd::pg
