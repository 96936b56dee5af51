// `meson install` of the build under test into a folder of a test's own (DESTDIR), as a
// distribution's packaging would run it: never into the machine's own /usr or /etc.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/status.h"
#include "tests/support/process.h"

namespace sigil::testing {

// Installs SIGIL_BUILD_ROOT's files under `destdir` with the meson of $SIGIL_MESON, building
// nothing (meson test built the binaries).
inline Status InstallInto(const std::filesystem::path& destdir) {
  const char* meson = std::getenv("SIGIL_MESON");
  auto installed = RunProcess({meson != nullptr ? meson : "meson", "install", "-C", SIGIL_BUILD_ROOT, "--no-rebuild",
                               "--quiet", "--destdir", destdir.string()},
                              {}, std::chrono::seconds(60));
  if (!installed.ok()) return installed.status();
  if (installed->exit_code != 0) {
    return InternalError("meson install into " + destdir.string() + " failed: " + installed->out + installed->err);
  }
  return Status::Ok();
}

}  // namespace sigil::testing
