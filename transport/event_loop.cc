#include "transport/event_loop.h"

#include <signal.h>

#include <cstdlib>
#include <mutex>

#include "core/event_loop_check.h"

namespace sigil::transport {

EventLoop::EventLoop() {
  // libuv writes to sockets with write(2): a peer that hung up would raise SIGPIPE and kill the
  // whole process. A closed peer is an ordinary error here (EPIPE, reported per connection), so
  // the first loop of a process turns the signal off, as gRPC and nginx do.
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { ::signal(SIGPIPE, SIG_IGN); });
  if (uv_loop_init(&loop_) != 0) std::abort();  // only fails when out of file descriptors
  uv_async_init(&loop_, &async_, &EventLoop::OnAsync);
  async_.data = this;
  uv_timer_init(&loop_, &grace_timer_);
  grace_timer_.data = this;
  // Neither handle should keep Run() alive once all real work is gone.
  uv_unref(reinterpret_cast<uv_handle_t*>(&grace_timer_));
}

EventLoop::~EventLoop() {
  {
    std::lock_guard lock(mu_);
    if (!closed_) {
      closed_ = true;
      uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&grace_timer_), nullptr);
    }
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

std::span<uint8_t> EventLoop::read_buffer() {
  constexpr size_t kReadBufferSize = 64 * 1024;
  if (!read_buffer_) read_buffer_ = std::make_unique_for_overwrite<uint8_t[]>(kReadBufferSize);
  return {read_buffer_.get(), kReadBufferSize};
}

bool EventLoop::InLoopThread() const {
  return thread_id_.load(std::memory_order_acquire) == std::this_thread::get_id();
}

void EventLoop::Run() {
  thread_id_.store(std::this_thread::get_id(), std::memory_order_release);
  MarkEventLoopThread(true);
  // The async handle stays referenced until Stop(), so an idle loop keeps waiting for posts.
  uv_run(&loop_, UV_RUN_DEFAULT);
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  Drain();  // whatever was posted before closed_ was set still runs
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&grace_timer_), nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  // Tasks posted by the closing handles' callbacks.
  Drain();
  MarkEventLoopThread(false);
  thread_id_.store(std::thread::id(), std::memory_order_release);
}

void EventLoop::Post(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  if (closed_) return;
  queue_.push_back(std::move(fn));
  uv_async_send(&async_);
}

void EventLoop::Stop(std::chrono::milliseconds grace) {
  std::lock_guard lock(mu_);
  if (closed_ || stop_requested_) return;
  stop_requested_ = true;
  grace_ = grace;
  uv_async_send(&async_);
}

void EventLoop::OnAsync(uv_async_t* handle) {
  auto* self = static_cast<EventLoop*>(handle->data);
  self->Drain();
  bool stop;
  {
    std::lock_guard lock(self->mu_);
    stop = self->stop_requested_;
  }
  if (stop && !self->stopping_) self->BeginStop();
}

void EventLoop::Drain() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(queue_);
  }
  for (auto& fn : batch) fn();
}

void EventLoop::BeginStop() {
  stopping_ = true;
  std::chrono::milliseconds grace;
  {
    std::lock_guard lock(mu_);
    grace = grace_;
  }
  // Copy: hooks may remove themselves while running.
  auto hooks = stop_hooks_;
  for (auto& [id, hook] : hooks) hook(false);
  uv_timer_start(&grace_timer_, &EventLoop::OnGraceTimer, static_cast<uint64_t>(grace.count()), 0);
  uv_unref(reinterpret_cast<uv_handle_t*>(&async_));
}

void EventLoop::OnGraceTimer(uv_timer_t* handle) {
  auto* self = static_cast<EventLoop*>(handle->data);
  auto hooks = self->stop_hooks_;
  for (auto& [id, hook] : hooks) hook(true);
}

int EventLoop::AddStopHook(std::function<void(bool force)> hook) {
  int id = next_hook_id_++;
  stop_hooks_.emplace(id, std::move(hook));
  return id;
}

void EventLoop::RemoveStopHook(int id) { stop_hooks_.erase(id); }

void LoopThread::Start() {
  thread_ = std::thread([this] { loop_.Run(); });
}

void LoopThread::Stop(std::chrono::milliseconds grace) {
  if (!thread_.joinable()) return;
  loop_.Stop(grace);
  thread_.join();
}

}  // namespace sigil::transport
