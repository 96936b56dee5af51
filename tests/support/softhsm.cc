#include "tests/support/softhsm.h"

#include <sys/stat.h>

#include <cstdlib>

namespace sigil::testing {

std::string SoftHsmTokenInfo::uri() const {
  return "pkcs11:token=" + label + "?module-path=" + kSoftHsmModule +
         "&pin-source=file:" + pin_file.string();
}

Result<std::unique_ptr<SoftHsm>> SoftHsm::Create() {
  auto hsm = std::unique_ptr<SoftHsm>(new SoftHsm());
  hsm->dir_ = std::make_unique<TempDir>("sigil-softhsm");
  std::filesystem::create_directory(*hsm->dir_ / "tokens");
  hsm->conf_path_ = *hsm->dir_ / "softhsm2.conf";
  WriteFile(hsm->conf_path_, "directories.tokendir = " + (*hsm->dir_ / "tokens").string() +
                                 "\nobjectstore.backend = file\nlog.level = ERROR\n"
                                 "slots.removable = false\n");
  ::setenv("SOFTHSM2_CONF", hsm->conf_path_.c_str(), 1);
  return hsm;
}

SoftHsm::~SoftHsm() { ::unsetenv("SOFTHSM2_CONF"); }

Result<SoftHsmTokenInfo> SoftHsm::InitToken(const std::string& label, const std::string& pin,
                                            const std::string& so_pin) {
  ProcessOptions options;
  options.env["SOFTHSM2_CONF"] = conf_path_.string();
  SIGIL_ASSIGN_OR_RETURN(ProcessOutput out,
                         RunProcess({"softhsm2-util", "--init-token", "--free", "--label", label,
                                     "--so-pin", so_pin, "--pin", pin},
                                    options));
  if (out.exit_code != 0) {
    return Status(Code::kInternal, "softhsm2-util --init-token failed: " + out.err + out.out);
  }
  SoftHsmTokenInfo info{label, pin, so_pin, *dir_ / (label + ".pin")};
  WriteFile(info.pin_file, pin + "\n");
  ::chmod(info.pin_file.c_str(), 0600);
  return info;
}

}  // namespace sigil::testing
