// The limits of an HTTP/2 listener as config keys, read the same way by serverd (the agent API,
// `agent_api_limits:`, counted per IP address) and agentd (the Workload API,
// `workload_api_limits:`, counted per uid):
//
//   max_connections: 4096            # at once; never more than the open-file limit leaves
//   max_connections_per_source: 256  # per IP address (serverd) or uid (agentd)
//   max_concurrent_streams: 128
//   max_request_bytes: 4194304       # one request's body
//   max_connection_request_bytes: 16777216   # request bodies one connection holds at once
//   max_stream_unsent_bytes: 8388608          # a slow reader's backlog, per stream
//   max_connection_unsent_bytes: 33554432     # and per connection
//   max_source_request_bytes: 33554432        # request bodies all of one source's connections hold
//   max_source_unsent_bytes: 67108864         # a source's slow-reader backlog over its connections
//   premature_resets_per_second: 10  # streams a connection's peer resets before their answer,
//   premature_reset_burst: 100       #   on average and at once; past them the connection ends
//   handshake_timeout: 10s           # TLS handshake and HTTP/2 preface
//   request_timeout: 30s             # from a request's HEADERS to its last byte
//   idle_timeout: 5m                 # with no stream open
//
// Absent keys keep Http2ServerOptions' defaults; each is bounded so a typo cannot turn a limit
// off (a value of 0 is refused).
#pragma once

#include "core/config.h"
#include "transport/http2_server.h"

namespace sigil::transport {

// Reads `section` into `options`, recording problems on the section (unknown keys included).
void ReadListenerLimits(ConfigSection& section, Http2ServerOptions& options);

}  // namespace sigil::transport
