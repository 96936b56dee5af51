// What a daemon under test holds, read from /proc: its open descriptors and its peak resident
// memory, for the tests that bound them under an attack.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace sigil::testing {

// Sanitizer runtimes add shadow memory and hold freed blocks back (ASan's quarantine, TSan's
// deferred frees), so a daemon built with one holds several times what it would. Memory bounds
// are stated for the build users run and multiplied by this in sanitizer builds, where the
// suite looks for races and undefined behaviour, not for bytes.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(SIGIL_THREAD_SANITIZER)
inline constexpr size_t kSanitizerMemoryFactor = 8;
#else
inline constexpr size_t kSanitizerMemoryFactor = 1;
#endif
// The same for latency bounds: instrumented code runs several times slower (TSan's 5–15×), so a
// bound on how long a call takes is stated for the build users run and multiplied by this.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(SIGIL_THREAD_SANITIZER)
inline constexpr int kSanitizerTimeFactor = 8;
#else
inline constexpr int kSanitizerTimeFactor = 1;
#endif

// The descriptors process `pid` holds open; with `sockets_only`, only its sockets.
inline size_t OpenDescriptors(pid_t pid, bool sockets_only = false) {
  std::error_code error;
  size_t count = 0;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", error), end;
       !error && it != end; it.increment(error)) {
    std::error_code unreadable;
    if (!sockets_only || std::filesystem::read_symlink(it->path(), unreadable).string().starts_with("socket:")) ++count;
  }
  EXPECT_FALSE(error) << error.message();
  return count;
}

// The process's peak resident memory since it started (VmHWM), in bytes.
inline size_t PeakResidentBytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  ADD_FAILURE() << "no VmHWM for process " << pid;
  return 0;
}

}  // namespace sigil::testing
