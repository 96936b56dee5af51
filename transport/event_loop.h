// EventLoop: one libuv loop, run by one thread, that owns every handle created on it.
//
// Work reaches a loop from other threads only through Post() (a uv_async wake-up plus a
// mutex-guarded queue), so connections, streams and timers are touched by their loop's thread
// alone and need no locks. Stop() is graceful: it runs the stop hooks that servers register
// (stop accepting, send GOAWAY, let in-flight streams finish), and Run() returns once every
// handle has closed; hooks are called a second time with `force` when the grace period ends.
//
// While Run() runs, its thread is marked as an event-loop thread (core/event_loop_check.h), so
// datastore and key-store calls made from a loop abort in debug builds.
//
// Thread safety: Post(), Stop() and InLoopThread() may be called from any thread; everything
// else from the loop's thread (or before Run() starts). LoopThread runs a loop on a thread of
// its own.
#pragma once

#include <uv.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <type_traits>
#include <vector>

namespace sigil::transport {

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  uv_loop_t* uv() { return &loop_; }

  // Runs the loop on the calling thread until Stop() has drained it.
  void Run();

  // Queues `fn` to run on the loop's thread, in posting order. Dropped once the loop has
  // finished running.
  void Post(std::function<void()> fn);

  // Asks the loop to wind down; `grace` bounds how long in-flight work may take.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  bool InLoopThread() const;

  // Hooks run on the loop thread when Stop() is processed: first with force=false (begin a
  // graceful drain), then with force=true if handles remain when the grace period ends.
  // Returns an id for RemoveStopHook. Loop thread only.
  int AddStopHook(std::function<void(bool force)> hook);
  void RemoveStopHook(int id);
  bool stopping() const { return stopping_; }

  // One buffer for every socket read on this loop. libuv hands each read to its callback
  // before it reads again, and readers consume the bytes there and then (nghttp2 and TLS copy
  // what they keep), so a connection needs no 64 KiB buffer of its own. Loop thread only.
  std::span<uint8_t> read_buffer();

  // Runs `fn` on the loop thread and waits for its result. Must not be called on the loop
  // thread itself (it would wait for itself).
  template <typename F>
  auto Invoke(F fn) -> std::invoke_result_t<F> {
    using R = std::invoke_result_t<F>;
    std::promise<R> done;
    auto future = done.get_future();
    Post([&] {
      if constexpr (std::is_void_v<R>) {
        fn();
        done.set_value();
      } else {
        done.set_value(fn());
      }
    });
    return future.get();
  }

 private:
  static void OnAsync(uv_async_t* handle);
  static void OnGraceTimer(uv_timer_t* handle);
  void Drain();
  void BeginStop();

  uv_loop_t loop_;
  uv_async_t async_;
  uv_timer_t grace_timer_;
  std::atomic<std::thread::id> thread_id_;

  std::mutex mu_;
  std::vector<std::function<void()>> queue_;  // guarded by mu_
  bool closed_ = false;                       // guarded by mu_: async_ no longer usable
  bool stop_requested_ = false;               // guarded by mu_
  std::chrono::milliseconds grace_{0};        // guarded by mu_

  bool stopping_ = false;  // loop thread
  std::unique_ptr<uint8_t[]> read_buffer_;  // loop thread
  int next_hook_id_ = 1;
  std::map<int, std::function<void(bool)>> stop_hooks_;
};

// An EventLoop on a thread of its own, started by Start() and stopped (gracefully) and joined
// by Stop() or the destructor.
class LoopThread {
 public:
  LoopThread() = default;
  ~LoopThread() { Stop(); }
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;

  EventLoop& loop() { return loop_; }
  void Start();
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

 private:
  EventLoop loop_;
  std::thread thread_;
};

}  // namespace sigil::transport
