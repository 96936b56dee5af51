// A software TPM 2.0 (swtpm) on a free loopback port, with its state in a folder that outlives
// a restart of the process, as a real TPM's NVRAM outlives a reboot.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "tests/support/process.h"

namespace sigil::testing {

class Swtpm {
 public:
  // Starts swtpm with its state in `state_dir` (created when missing) and logs in `log_dir`.
  static Result<std::unique_ptr<Swtpm>> Start(const std::filesystem::path& state_dir,
                                              const std::filesystem::path& log_dir);
  ~Swtpm();

  // Manufactures a TPM's state in `state_dir` as a vendor does, before Start on that folder: an
  // RSA-2048 EK whose certificate is in NV index 0x01c00002 (and an ECC P-384 EK, 0x01c00016),
  // issued by a local EK CA kept in `ek_ca_dir` and made there on first use (swtpm_setup with
  // swtpm_localca, configured by files of the test's own in `ek_ca_dir`).
  static Status ManufactureWithEkCertificates(const std::filesystem::path& state_dir,
                                              const std::filesystem::path& ek_ca_dir);
  // The PEM files a verifier of those EK certificates trusts: the local CA's root and its
  // issuing CA.
  static std::vector<std::filesystem::path> EkCaCertificates(
      const std::filesystem::path& ek_ca_dir);

  // Stops the process (SIGTERM) and starts it again on the same ports and state.
  Status Restart();
  void Stop();

  int port() const { return port_; }
  // swtpm:host=127.0.0.1,port=<port>
  std::string tcti() const;

 private:
  Swtpm() = default;
  Status Launch();

  std::filesystem::path state_dir_;
  std::filesystem::path log_dir_;
  int port_ = 0;
  std::optional<ChildProcess> process_;
};

}  // namespace sigil::testing
