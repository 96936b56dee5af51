// The request head an HTTP/1.1 client sends to the health, metrics and OIDC discovery listeners.
#include <variant>

#include "tests/fuzz/fuzz_support.h"
#include "transport/http_get_server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view head = sigil::fuzz::AsText(data, size);
  auto parsed = sigil::transport::ParseHttpGetRequest(head);
  if (auto* refusal = std::get_if<sigil::transport::HttpGetResponse>(&parsed)) {
    FUZZ_CHECK(refusal->status == 400 || refusal->status == 405);
    return 0;
  }
  const auto& request = std::get<sigil::transport::HttpGetRequest>(parsed);
  // What was read came from the head: a method it reads, a path without its query, and header
  // names in lower case, none empty.
  FUZZ_CHECK(request.method == "GET" || request.method == "HEAD");
  FUZZ_CHECK(request.path.find('?') == std::string::npos);
  FUZZ_CHECK(request.path.size() < size);
  for (const auto& [name, value] : request.headers) {
    FUZZ_CHECK(!name.empty());
    for (char c : name) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
    FUZZ_CHECK(value.size() < size);
    FUZZ_CHECK(request.Header(name).data() != nullptr);
  }
  return 0;
}
