#include "serverd/datastore/postgres_change_listener.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/failure_log.h"
#include "core/log.h"

namespace sigil::serverd::pg {

namespace {

// How long the listening connection may stay silent before it is checked with a round trip.
constexpr std::chrono::seconds kQuietCheck{30};

std::optional<StoreChange> ChangeNamed(std::string_view payload) {
  if (payload == "entries") return StoreChange::kEntries;
  if (payload == "bundles") return StoreChange::kBundles;
  if (payload == "ca_journal") return StoreChange::kCaJournal;
  return std::nullopt;
}

}  // namespace

ChangeListener::ChangeListener(Pool& pool, ChangeFeed& feed)
    : pool_(pool), feed_(feed), stop_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  thread_ = std::thread([this] { Run(); });
}

ChangeListener::~ChangeListener() {
  const uint64_t one = 1;
  if (stop_fd_ >= 0) (void)!write(stop_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  if (stop_fd_ >= 0) close(stop_fd_);
}

bool ChangeListener::SleepUnlessStopped(std::chrono::milliseconds duration) {
  pollfd stop{stop_fd_, POLLIN, 0};
  return poll(&stop, 1, static_cast<int>(duration.count())) > 0;
}

void ChangeListener::Run() {
  Backoff backoff(kConnectBackoff);
  FailureLog failures(LogLevel::kWarn, "the datastore's change listener cannot reach PostgreSQL; replicas' changes arrive by the "
                      "periodic resync until it does",
                      std::chrono::minutes(1));
  while (true) {
    auto connection = pool_.Connect();
    Status listening = connection.ok() ? (*connection)->Exec("LISTEN sigil_changes", "listening for changes")
                                       : connection.status();
    if (!listening.ok()) {
      failures.Failed({{"error", listening.ToString()}});
      if (SleepUnlessStopped(backoff.Next())) return;
      continue;
    }
    backoff.Reset();
    failures.Succeeded("the datastore's change listener reaches PostgreSQL again");
    // What was committed while nobody listened is not announced: say that anything may have changed.
    for (StoreChange change : kEveryStoreChange) feed_.Publish(change);
    if (Listen(**connection)) return;
  }
}

bool ChangeListener::Listen(Connection& connection) {
  PGconn* conn = connection.raw();
  while (true) {
    pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {PQsocket(conn), POLLIN, 0}};
    if (fds[1].fd < 0) return false;
    const int ready = poll(fds, 2, static_cast<int>(std::chrono::milliseconds(kQuietCheck).count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0 || (fds[0].revents & POLLIN) != 0) return true;
    if (ready == 0) {
      // Quiet for a while: make sure the server is still there, as a connection that died
      // without a word (a host gone, a partition) would leave this listener deaf for good.
      // Notifications that arrive meanwhile are kept by libpq and read below.
      if (!connection.Exec("SELECT 1", "checking the listening connection").ok()) return false;
    } else if (PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK) {
      return false;
    }
    while (PGnotify* notification = PQnotifies(conn)) {
      if (std::strcmp(notification->relname, kChangeChannel) == 0) {
        if (auto change = ChangeNamed(notification->extra)) feed_.Publish(*change);
      }
      PQfreemem(notification);
    }
  }
}

}  // namespace sigil::serverd::pg
