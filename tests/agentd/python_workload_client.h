// The stock Python gRPC client (Debian's python3-grpcio) driving a Workload API socket through
// workload_client.py, with stubs generated at test time from agentd/workload/workload.proto. Runs as
// the test's own uid or, through setpriv, as another.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace sigil::agentd::testing {

// The messages a `watch` child prints, one JSON line each, read as the lines complete.
class WatchedLines {
 public:
  explicit WatchedLines(const sigil::testing::ChildProcess& watcher) : watcher_(watcher) {}

  // Calls `each` with every message whose line completed since the last call.
  template <typename Each>
  void Poll(Each&& each) {
    const std::string text = watcher_.stdout_text();
    std::istringstream lines(text.substr(consumed_));
    std::string line;
    while (std::getline(lines, line)) {
      if (lines.eof()) break;  // a line still being written
      consumed_ += line.size() + 1;
      each(nlohmann::json::parse(line, nullptr, false));
    }
  }

 private:
  const sigil::testing::ChildProcess& watcher_;
  size_t consumed_ = 0;
};

class PythonWorkloadClient {
 public:
  // Generates the stubs into `stub_dir` (which must be readable by the uids used).
  static Result<PythonWorkloadClient> Create(const std::filesystem::path& stub_dir) {
    std::filesystem::create_directories(stub_dir);
    SIGIL_ASSIGN_OR_RETURN(auto generated,
                           sigil::testing::RunProcess({"/usr/bin/python3", "-m", "grpc_tools.protoc", "-I",
                                                       SIGIL_WORKLOAD_PROTO_DIR, "-I", "/usr/include",
                                                       "--python_out=" + stub_dir.string(),
                                                       "--grpc_python_out=" + stub_dir.string(), "workload.proto"}));
    if (generated.exit_code != 0) return InternalError("grpc_tools.protoc failed: " + generated.err);
    return PythonWorkloadClient(stub_dir.string());
  }

  std::vector<std::string> Argv(const std::string& socket_path, const std::vector<std::string>& args,
                                std::optional<uid_t> uid = std::nullopt) const {
    std::vector<std::string> argv;
    if (uid) {
      const std::string id = std::to_string(*uid);
      argv = {"setpriv", "--reuid", id, "--regid", id, "--clear-groups"};
    }
    argv.insert(argv.end(), {"/usr/bin/python3", std::string(SIGIL_AGENTD_TEST_DIR) + "/workload_client.py",
                             stubs_, "unix://" + socket_path});
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  // Runs one command to completion and parses its JSON.
  nlohmann::json Run(const std::string& socket_path, const std::vector<std::string>& args,
                     std::optional<uid_t> uid = std::nullopt) const {
    auto run = sigil::testing::RunProcess(Argv(socket_path, args, uid), {}, std::chrono::seconds(30));
    EXPECT_TRUE(run.ok());
    if (!run.ok()) return nlohmann::json();
    EXPECT_EQ(run->exit_code, 0) << run->err;
    auto out = nlohmann::json::parse(run->out, nullptr, false);
    EXPECT_FALSE(out.is_discarded()) << run->out << run->err;
    return out;
  }

 private:
  explicit PythonWorkloadClient(std::string stubs) : stubs_(std::move(stubs)) {}
  std::string stubs_;
};

}  // namespace sigil::agentd::testing
