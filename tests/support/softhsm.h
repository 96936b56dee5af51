// A SoftHSM2 installation of the test's own: a token folder and a SOFTHSM2_CONF in a temporary
// folder, so tests never touch the machine's tokens. SOFTHSM2_CONF is process-wide (the module
// reads it when first initialised), so a test binary makes one SoftHsm and as many tokens in it
// as it needs, before it opens stores on them.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "core/status.h"
#include "tests/support/process.h"

namespace sigil::testing {

inline constexpr char kSoftHsmModule[] = "/usr/lib/softhsm/libsofthsm2.so";

struct SoftHsmTokenInfo {
  std::string label;
  std::string pin;
  std::string so_pin;
  std::filesystem::path pin_file;  // holds `pin`, mode 0600

  // pkcs11:token=<label>?module-path=...&pin-source=file:<pin_file>
  std::string uri() const;
};

class SoftHsm {
 public:
  // Writes the config and points SOFTHSM2_CONF at it for this process.
  static Result<std::unique_ptr<SoftHsm>> Create();
  ~SoftHsm();

  // softhsm2-util --init-token --free; the slot is random, so tokens are found by label.
  Result<SoftHsmTokenInfo> InitToken(const std::string& label, const std::string& pin = "1234",
                                     const std::string& so_pin = "5678");

  const std::filesystem::path& conf_path() const { return conf_path_; }

  // Allows or forbids signing (CKA_SIGN) with the private keys of token `label` whose label
  // starts with `key_label_prefix`, as an operator could with the token's own tools. A process
  // already using them sees it at its next signature: SoftHSM reads its objects again on each.
  // NotFound when no key matches.
  Status SetSigningAllowed(const std::string& label, const std::string& pin,
                           const std::string& key_label_prefix, bool allowed);

 private:
  SoftHsm() = default;
  std::unique_ptr<TempDir> dir_;
  std::filesystem::path conf_path_;
};

}  // namespace sigil::testing
