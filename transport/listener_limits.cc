#include "transport/listener_limits.h"

#include <chrono>
#include <cstdint>

namespace sigil::transport {

namespace {

void ReadSize(ConfigSection& section, const char* key, size_t& value, int64_t min, int64_t max) {
  int64_t read = static_cast<int64_t>(value);
  section.Read(key, read, min, max);
  value = static_cast<size_t>(read);
}

// Whole numbers: a rate of 0 would end every connection at its first cancelled request.
void ReadRate(ConfigSection& section, const char* key, double& value) {
  int64_t read = static_cast<int64_t>(value);
  section.Read(key, read, 1, 1'000'000);
  value = static_cast<double>(read);
}

void ReadTimeout(ConfigSection& section, const char* key, std::chrono::milliseconds& value) {
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(value);
  section.Read(key, seconds, std::chrono::seconds(1));
  // A day is far beyond any honest peer's pause, and keeps the timer arithmetic in range.
  if (seconds > std::chrono::hours(24)) {
    section.Problem(key, "must be at most 24h");
    return;
  }
  value = seconds;
}

}  // namespace

void ReadListenerLimits(ConfigSection& section, Http2ServerOptions& options) {
  ReadSize(section, "max_connections", options.max_connections, 1, 1 << 20);
  ReadSize(section, "max_connections_per_source", options.max_connections_per_source, 1, 1 << 20);
  int64_t streams = options.max_concurrent_streams;
  section.Read("max_concurrent_streams", streams, 1, 1 << 16);
  options.max_concurrent_streams = static_cast<uint32_t>(streams);
  ReadSize(section, "max_request_bytes", options.max_request_body_bytes, 1024, int64_t{1} << 30);
  ReadSize(section, "max_connection_request_bytes", options.max_connection_request_bytes, 1024, int64_t{1} << 32);
  ReadSize(section, "max_stream_unsent_bytes", options.max_stream_unsent_bytes, 64 * 1024, int64_t{1} << 32);
  ReadSize(section, "max_connection_unsent_bytes", options.max_connection_unsent_bytes, 64 * 1024, int64_t{1} << 34);
  ReadSize(section, "max_source_request_bytes", options.max_source_request_bytes, 1024, int64_t{1} << 34);
  ReadSize(section, "max_source_unsent_bytes", options.max_source_unsent_bytes, 64 * 1024, int64_t{1} << 36);
  ReadRate(section, "premature_resets_per_second", options.premature_resets_per_second);
  ReadRate(section, "premature_reset_burst", options.premature_reset_burst);
  ReadTimeout(section, "handshake_timeout", options.handshake_timeout);
  ReadTimeout(section, "request_timeout", options.request_timeout);
  ReadTimeout(section, "idle_timeout", options.idle_timeout);
  section.RefuseUnknownKeys();
}

}  // namespace sigil::transport
