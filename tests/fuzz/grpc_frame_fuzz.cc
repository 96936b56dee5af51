// gRPC length-prefixed messages as a Workload API client streams them, cut into reads at the
// points the input's first byte picks; and grpc-message percent-encoding.
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_support.h"
#include "transport/grpc.h"

using namespace sigil::transport;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 64;
  const std::string_view input = sigil::fuzz::AsText(data + 1, size - 1);
  constexpr size_t kLimit = 1 << 16;

  std::string whole(input);
  std::vector<std::string> at_once;
  const bool whole_ok = GrpcTakeMessages(&whole, &at_once, kLimit).ok();

  std::string buffer;
  std::vector<std::string> streamed;
  bool streamed_ok = true;
  for (size_t pos = 0; pos < input.size() && streamed_ok; pos += step) {
    buffer.append(input.substr(pos, step));
    streamed_ok = GrpcTakeMessages(&buffer, &streamed, kLimit).ok();
  }
  // However the bytes arrive, the same messages come out, and a refusal is the same refusal.
  FUZZ_CHECK(whole_ok == streamed_ok);
  if (whole_ok) {
    FUZZ_CHECK(at_once == streamed);
    FUZZ_CHECK(whole == buffer);
    std::string framed;
    for (const auto& message : at_once) framed += GrpcFrame(message);
    FUZZ_CHECK(framed + whole == input);
  }
  FUZZ_CHECK(PercentDecodeGrpcMessage(PercentEncodeGrpcMessage(input)) == input);
  (void)PercentDecodeGrpcMessage(input);
  return 0;
}
