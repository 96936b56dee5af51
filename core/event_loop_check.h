// Which threads run an event loop, so that code which may block (datastore, key store, TPM)
// can refuse to run on one. An event loop that waits on disk or a token stalls every
// connection it owns; this turns that mistake into a crash in tests rather than a latency
// spike in production.
//
// transport's EventLoop marks its thread while it runs. AssertNotOnEventLoop("what") aborts,
// naming `what`, when called on a marked thread.
//
// Switched on when NDEBUG is not defined: the debug and debugoptimized builds the tests and the
// sanitizer builds use (meson's b_ndebug=if-release), and off in release builds (bench/), where
// it costs nothing. Define SIGIL_EVENT_LOOP_CHECK=0 or 1 to force it either way.
//
// Thread safety: every function reads or writes only the calling thread's own mark.
#pragma once

#include <cstdio>
#include <cstdlib>

#ifndef SIGIL_EVENT_LOOP_CHECK
#ifdef NDEBUG
#define SIGIL_EVENT_LOOP_CHECK 0
#else
#define SIGIL_EVENT_LOOP_CHECK 1
#endif
#endif

namespace sigil {

namespace internal {
inline thread_local bool on_event_loop_thread = false;
}  // namespace internal

// Marks (or unmarks) the calling thread as an event-loop thread. Called by transport's loops.
inline void MarkEventLoopThread(bool on) { internal::on_event_loop_thread = on; }

inline bool OnEventLoopThread() { return internal::on_event_loop_thread; }

// Aborts when the calling thread runs an event loop: `what` is about to block.
inline void AssertNotOnEventLoop([[maybe_unused]] const char* what) {
#if SIGIL_EVENT_LOOP_CHECK
  if (internal::on_event_loop_thread) {
    std::fprintf(stderr, "fatal: %s called on an event-loop thread; it may block, run it on a worker\n", what);
    std::abort();
  }
#endif
}

}  // namespace sigil
