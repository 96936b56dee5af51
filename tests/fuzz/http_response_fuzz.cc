// The answer of another trust domain's bundle endpoint, and the endpoint URLs an operator gives.
#include "tests/fuzz/fuzz_support.h"
#include "transport/https_get.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = sigil::fuzz::AsText(data, size);
  auto response = sigil::transport::ParseHttpResponse(text);
  if (response.ok()) {
    FUZZ_CHECK(response->status >= 100 && response->status <= 599);
    FUZZ_CHECK(response->body.size() <= size);
    for (const auto& [name, value] : response->headers) {
      FUZZ_CHECK(!name.empty());
      for (char c : name) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
    }
  } else {
    FUZZ_CHECK(response.status().code() == sigil::Code::kInvalidArgument);
  }
  auto url = sigil::transport::HttpsUrl::Parse(text);
  if (url.ok()) {
    FUZZ_CHECK(!url->host.empty());
    FUZZ_CHECK(url->port > 0 && url->port <= 65535);
    FUZZ_CHECK(url->path.starts_with('/'));
    // What was read names the same endpoint when written back.
    auto again = sigil::transport::HttpsUrl::Parse("https://[" + url->host + "]:" + std::to_string(url->port) + url->path);
    FUZZ_CHECK(again.ok() && again->host == url->host && again->port == url->port && again->path == url->path);
  } else {
    FUZZ_CHECK(url.status().code() == sigil::Code::kInvalidArgument);
  }
  return 0;
}
