#include "tests/support/swtpm.h"

namespace sigil::testing {

Result<std::unique_ptr<Swtpm>> Swtpm::Start(const std::filesystem::path& state_dir,
                                            const std::filesystem::path& log_dir) {
  auto tpm = std::unique_ptr<Swtpm>(new Swtpm());
  tpm->state_dir_ = state_dir;
  tpm->log_dir_ = log_dir;
  std::filesystem::create_directories(state_dir);
  std::filesystem::create_directories(log_dir);
  tpm->port_ = FreeLoopbackPort(2);  // the TPM port and the control port after it
  SIGIL_RETURN_IF_ERROR(tpm->Launch());
  return tpm;
}

Swtpm::~Swtpm() { Stop(); }

std::string Swtpm::tcti() const {
  return "swtpm:host=127.0.0.1,port=" + std::to_string(port_);
}

Status Swtpm::Launch() {
  const std::string port = std::to_string(port_);
  const std::string ctrl = std::to_string(port_ + 1);
  SIGIL_ASSIGN_OR_RETURN(
      ChildProcess child,
      ChildProcess::Start({"swtpm", "socket", "--tpm2", "--server",
                           "type=tcp,port=" + port + ",bindaddr=127.0.0.1", "--ctrl",
                           "type=tcp,port=" + ctrl + ",bindaddr=127.0.0.1", "--tpmstate",
                           "dir=" + state_dir_.string(), "--flags", "not-need-init,startup-clear"},
                          log_dir_));
  process_.emplace(std::move(child));
  if (!WaitUntil([&] { return LoopbackPortAccepts(port_) || !process_->running(); })) {
    return Status(Code::kDeadlineExceeded, "swtpm did not listen on port " + port);
  }
  if (!process_->running()) {
    return Status(Code::kInternal, "swtpm exited at start: " + process_->stderr_text());
  }
  return Status::Ok();
}

Status Swtpm::Restart() {
  Stop();
  return Launch();
}

void Swtpm::Stop() {
  if (process_) {
    process_->Stop();
    process_.reset();
  }
}

}  // namespace sigil::testing
