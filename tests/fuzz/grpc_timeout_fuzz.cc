// The grpc-timeout header of a Workload API call.
#include "tests/fuzz/fuzz_support.h"
#include "transport/grpc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace std::chrono;
  auto timeout = sigil::transport::ParseGrpcTimeout(sigil::fuzz::AsText(data, size));
  if (!timeout.ok()) return 0;
  // Never negative, never past the clamp, and what it prints parses again.
  FUZZ_CHECK(*timeout >= nanoseconds(0));
  FUZZ_CHECK(*timeout <= hours(24 * 365 * 10));
  auto again = sigil::transport::ParseGrpcTimeout(sigil::transport::FormatGrpcTimeout(*timeout));
  FUZZ_CHECK(again.ok() && *again >= *timeout);
  return 0;
}
