// The Echo test service (echo.proto) served by Sigil's gRPC router, shared by the transport
// tests. Counters record what the handlers observed so tests can check the server side.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "echo.pb.h"
#include "transport/grpc.h"

namespace sigil::transport {

// Serves sigil.test.Echo; counts what the handlers observe so tests can assert on the server
// side of each call too.
class EchoService {
 public:
  explicit EchoService(GrpcRouter* router) {
    router->RegisterUnary("/sigil.test.Echo/Say", [this](auto call, std::string bytes) {
      sigil::test::EchoRequest req;
      if (!req.ParseFromString(bytes)) {
        call->Finish(InvalidArgumentError("bad EchoRequest"));
        return;
      }
      if (req.code() != 0) {
        call->Finish(Status(static_cast<Code>(req.code()), req.message()));
        return;
      }
      sigil::test::EchoReply reply;
      std::string uid = call->peer().credentials
                            ? std::to_string(call->peer().credentials->uid)
                            : std::string("?");
      reply.set_text(req.text() + " " + std::string(call->Metadata("x-who")) + " uid=" + uid);
      call->AddInitialMetadata("x-initial", "early");
      call->AddTrailingMetadata("x-trailer", "done");
      call->Write(reply.SerializeAsString());
      call->Finish(Status::Ok());
    });
    router->RegisterServerStreaming("/sigil.test.Echo/Repeat", [this](auto call, std::string bytes) {
      sigil::test::EchoRequest req;
      req.ParseFromString(bytes);
      if (req.count() >= 0) {
        for (int i = 0; i < req.count(); ++i) {
          sigil::test::EchoReply reply;
          reply.set_text(req.text() + std::to_string(i));
          reply.set_index(i);
          call->Write(reply.SerializeAsString());
        }
        call->Finish(Status::Ok());
        return;
      }
      // Endless: a worker thread writes until the client cancels, as a handler that completes
      // off the loop would.
      auto stop = std::make_shared<std::atomic<bool>>(false);
      call->OnCancel([this, stop] {
        stop->store(true);
        cancelled_streams.fetch_add(1);
      });
      workers_.emplace_back([call, stop, text = req.text()] {
        for (int i = 0; !stop->load() && i < 2000; ++i) {
          sigil::test::EchoReply reply;
          reply.set_text(text + std::to_string(i));
          call->Write(reply.SerializeAsString());
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      });
    });
    router->RegisterUnary("/sigil.test.Echo/Hang", [this](auto call, std::string) {
      had_deadline = call->deadline().has_value();
      call->OnCancel([this] { cancelled_hangs.fetch_add(1); });
      hanging_.push_back(call);  // never answered: the deadline ends it
    });
  }
  ~EchoService() { JoinWorkers(); }

  void JoinWorkers() {
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::atomic<int> cancelled_streams = 0;
  std::atomic<int> cancelled_hangs = 0;
  std::atomic<bool> had_deadline = false;

 private:
  std::vector<std::thread> workers_;
  std::vector<std::shared_ptr<GrpcServerCall>> hanging_;
};

}  // namespace sigil::transport
