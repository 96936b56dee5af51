// A blocking HTTPS GET of one small document, for a thread that may block (serverd's federation
// refresher fetching another trust domain's bundle endpoint). It asks in HTTP/1.0, so no server
// answers in chunks, reads until the server closes, and is bounded in time (the whole exchange)
// and in bytes. The TLS context decides how the server is checked: by a trust bundle and its
// SPIFFE ID (https_spiffe), or by the web PKI and its host name (https_web, TlsOptions).
//
// Why here: no HTTP client library is among Sigil's dependencies, and the one request it makes
// needs a few hundred lines over the TLS session the rest of transport already uses.
//
// Thread safety: HttpsGet blocks its caller; any number of threads may call it at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "transport/http_header_fields.h"
#include "transport/tls.h"

namespace sigil::transport {

struct HttpsUrl {
  std::string host;  // a name or an IPv4 literal ([v6] brackets removed)
  int port = 443;
  std::string path = "/";  // with its query

  // "https://host[:port][/path]"; InvalidArgument naming what is wrong otherwise.
  static Result<HttpsUrl> Parse(std::string_view url);
};

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
};

// A whole HTTP/1.x response as read until the server closed: the status line, the header
// fields, and the body (Content-Length bytes when given, else the rest). InvalidArgument naming
// what is wrong: no status line, a malformed field, a body shorter than its Content-Length, a
// chunked body (never sent to an HTTP/1.0 request).
Result<HttpResponse> ParseHttpResponse(std::string_view bytes);

struct HttpsGetOptions {
  std::chrono::milliseconds timeout{10'000};  // connecting, the handshake and the answer
  size_t max_response_bytes = size_t{1} << 20;
};

// GETs `url` over TLS with `tls` (a client context). Unavailable when the host cannot be
// reached, Unauthenticated when the server's certificate is refused, DeadlineExceeded when the
// exchange outlives the timeout, ResourceExhausted when the answer is larger than allowed.
Result<HttpResponse> HttpsGet(const HttpsUrl& url, std::shared_ptr<const TlsContext> tls, const HttpsGetOptions& options = {});

}  // namespace sigil::transport
