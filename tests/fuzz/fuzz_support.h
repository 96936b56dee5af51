// What the fuzz targets share: the libFuzzer entry point's signature, a check that aborts (so
// libFuzzer records the input as a crash) and the fixed key and clock under which the seed
// corpora were made, so a checked-in JWT stays valid and its claims stay reachable.
// Header only, but for JwtSigner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/signer.h"
#include "core/x509_ca.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

// An invariant of the parser under test; a failure is a finding.
#define FUZZ_CHECK(condition)                                                           \
  do {                                                                                  \
    if (!(condition)) {                                                                 \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (false)

// A Result or Status that must be ok; on a finding, what it said is printed beside the input.
#define FUZZ_CHECK_OK(result)                                                              \
  do {                                                                                     \
    if (!(result).ok()) {                                                                  \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK_OK(%s) failed: %s\n", __FILE__, __LINE__, #result, \
                   ::sigil::fuzz::Describe(result).c_str());                              \
      std::abort();                                                                        \
    }                                                                                      \
  } while (false)

namespace sigil::fuzz {

inline std::string Describe(const Status& status) { return status.ToString(); }
template <typename T>
std::string Describe(const Result<T>& result) {
  return result.status().ToString();
}

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

inline constexpr std::string_view kTrustDomain = "example.org";

// 2027-01-15: the clock of every target that checks expiry; the seeds' tokens expire after it.
inline const TimePoint kNow = FromUnixSeconds(1'800'000'000);

// The JWT authority of the jwt_svid target and of the seed generator: P-256, key ID "fuzz"
// (fuzz_jwt_key.cc).
inline constexpr std::string_view kJwtKeyId = "fuzz";
std::shared_ptr<Signer> JwtSigner();

}  // namespace sigil::fuzz
