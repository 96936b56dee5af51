// A Workload API client on the gRPC C++ library (grpc++), as a C++ workload would write one:
// on one channel, `threads` threads each call FetchX509SVID, read its first message and cancel
// the stream, until `calls` calls have been made. Prints one JSON line: how many calls were
// made, how many failed (no first message, or a status other than CANCELLED after the cancel),
// the first failure, and the calls per second.
//
//   grpcpp_fetch_and_cancel SOCKET_PATH THREADS CALLS
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "workload.grpc.pb.h"

namespace {

struct Outcome {
  std::atomic<long> made{0};
  std::atomic<long> failed{0};
  std::mutex mutex;
  std::string first_failure;

  void Fail(const std::string& why) {
    failed++;
    std::lock_guard lock(mutex);
    if (first_failure.empty()) first_failure = why;
  }
};

std::string Describe(const grpc::Status& status) {
  return std::to_string(status.error_code()) + ": " + status.error_message();
}

// Quotes `text` as a JSON string (gRPC's messages are printable ASCII; anything else is dropped).
std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c >= 0x20 && c < 0x7f) out += c;
  }
  return out + "\"";
}

void FetchAndCancel(SpiffeWorkloadAPI::Stub& stub, long calls, Outcome& outcome) {
  while (outcome.made++ < calls) {
    grpc::ClientContext context;
    context.AddMetadata("workload.spiffe.io", "true");
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto reader = stub.FetchX509SVID(&context, X509SVIDRequest());
    X509SVIDResponse response;
    const bool read = reader->Read(&response);
    context.TryCancel();
    const grpc::Status status = reader->Finish();
    if (!read) {
      outcome.Fail("no first message: " + Describe(status));
    } else if (response.svids_size() == 0) {
      outcome.Fail("a first message without an SVID");
    } else if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
      outcome.Fail("after the cancel: " + Describe(status));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s SOCKET_PATH THREADS CALLS\n", argv[0]);
    return 2;
  }
  const int threads = std::atoi(argv[2]);
  const long calls = std::atol(argv[3]);
  auto channel = grpc::CreateChannel(std::string("unix:") + argv[1], grpc::InsecureChannelCredentials());
  SpiffeWorkloadAPI::Stub stub(channel);
  Outcome outcome;
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i) workers.emplace_back([&] { FetchAndCancel(stub, calls, outcome); });
  for (auto& worker : workers) worker.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("{\"calls\": %ld, \"failed\": %ld, \"first_failure\": %s, \"calls_per_second\": %.0f}\n", calls,
              outcome.failed.load(), JsonString(outcome.first_failure).c_str(), calls / seconds);
  return 0;
}
