// A workload watching its identity: one FetchX509SVID stream to an agentd's Workload API,
// noting when each answer arrived and how many SVIDs it held. The scenarios that time how long
// a change takes to reach a workload wait on it.
//
// Thread safety: WaitFor from any thread; the stream lives on a loop of its own.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "agentd/workload/workload.pb.h"
#include "core/status.h"
#include "transport/event_loop.h"
#include "transport/grpc_client.h"

namespace sigil::bench {

class Watcher {
 public:
  explicit Watcher(const std::string& socket_path) {
    loop_.Start();
    loop_.loop().Post([this, socket_path] {
      channel_ = std::make_unique<transport::GrpcChannel>(&loop_.loop(), transport::Endpoint::Unix(socket_path));
      transport::GrpcCallOptions options;
      options.metadata = {{"workload.spiffe.io", "true"}};
      options.max_message_bytes = 16 << 20;
      call_ = channel_->CallServerStreaming(
          "/SpiffeWorkloadAPI/FetchX509SVID", "", options,
          [this](std::string message) {
            X509SVIDResponse response;
            const bool parsed = response.ParseFromString(message);
            std::lock_guard lock(mu_);
            svids_ = parsed ? response.svids_size() : -1;
            last_at_ = std::chrono::steady_clock::now();
            changed_.notify_all();
          },
          [this](Status status) {
            std::lock_guard lock(mu_);
            ended_ = status.ok() ? InternalError("the stream ended") : status;
            changed_.notify_all();
          });
    });
  }
  ~Watcher() {
    loop_.loop().Invoke([&] {
      if (call_) call_->Cancel();
      channel_.reset();
    });
    loop_.Stop();
  }

  // When an answer with `count` SVIDs arrived.
  Result<std::chrono::steady_clock::time_point> WaitFor(int count, std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    if (!changed_.wait_for(lock, timeout, [&] { return svids_ == count || !ended_.ok(); })) {
      return DeadlineExceededError("the workload never saw " + std::to_string(count) + " SVIDs (last " +
                                   std::to_string(svids_) + ")");
    }
    if (!ended_.ok()) return ended_;
    return last_at_;
  }

 private:
  transport::LoopThread loop_;
  std::unique_ptr<transport::GrpcChannel> channel_;
  std::shared_ptr<transport::GrpcClientCall> call_;
  std::mutex mu_;
  std::condition_variable changed_;
  int svids_ = 0;
  std::chrono::steady_clock::time_point last_at_;
  Status ended_;
};

}  // namespace sigil::bench
