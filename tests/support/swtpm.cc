#include "tests/support/swtpm.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

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

namespace {

// swtpm_setup runs its certificate tool by the path in its config file.
std::filesystem::path FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::filesystem::path candidate =
        std::filesystem::path(dirs.substr(start, end - start)) / program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return program;
}

}  // namespace

Status Swtpm::ManufactureWithEkCertificates(const std::filesystem::path& state_dir,
                                            const std::filesystem::path& ek_ca_dir) {
  std::filesystem::create_directories(state_dir);
  std::filesystem::create_directories(ek_ca_dir);
  const std::string ca = ek_ca_dir.string();
  WriteFile(ek_ca_dir / "localca.conf",
            "statedir = " + ca + "\nsigningkey = " + ca + "/signkey.pem\nissuercert = " + ca +
                "/issuercert.pem\ncertserial = " + ca + "/certserial\n");
  WriteFile(ek_ca_dir / "localca.options",
            "--platform-manufacturer Sigil\n--platform-version 1.0\n--platform-model test\n");
  WriteFile(ek_ca_dir / "swtpm_setup.conf",
            "create_certs_tool = " + FindOnPath("swtpm_localca").string() +
                "\ncreate_certs_tool_config = " + ca +
                "/localca.conf\ncreate_certs_tool_options = " + ca +
                "/localca.options\nactive_pcr_banks = sha256\n");
  SIGIL_ASSIGN_OR_RETURN(
      ProcessOutput out,
      RunProcess({"swtpm_setup", "--tpm2", "--tpmstate", state_dir.string(), "--create-ek-cert",
                  "--config", (ek_ca_dir / "swtpm_setup.conf").string(), "--overwrite"}));
  if (out.exit_code != 0) {
    return Status(Code::kInternal, "swtpm_setup failed: " + out.out + out.err);
  }
  return Status::Ok();
}

std::vector<std::filesystem::path> Swtpm::EkCaCertificates(const std::filesystem::path& ek_ca_dir) {
  return {ek_ca_dir / "swtpm-localca-rootca-cert.pem", ek_ca_dir / "issuercert.pem"};
}

std::string Swtpm::tcti() const { return "swtpm:host=127.0.0.1,port=" + std::to_string(port_); }

Status Swtpm::Launch() {
  const std::string port = std::to_string(port_);
  const std::string ctrl = std::to_string(port_ + 1);
  SIGIL_ASSIGN_OR_RETURN(
      ChildProcess child,
      ChildProcess::Start(
          {"swtpm", "socket", "--tpm2", "--server", "type=tcp,port=" + port + ",bindaddr=127.0.0.1",
           "--ctrl", "type=tcp,port=" + ctrl + ",bindaddr=127.0.0.1", "--tpmstate",
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
