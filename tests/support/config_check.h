// Config values a daemon must refuse at start, each with a message naming its key; and the
// listener limits two configs give, compared.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "transport/http2_server.h"

namespace sigil::testing {

// Parses `yaml_before_value` followed by each of `values` (and a newline) with `parse`, and
// expects each refused with a message naming `key` as the config errors do ("agent.key: ...").
inline void ExpectEachValueRefusedNamingKey(const std::function<Status(const std::string& yaml)>& parse,
                                            const std::string& yaml_before_value,
                                            const std::vector<std::string>& values, const std::string& key) {
  for (const std::string& value : values) {
    const Status parsed = parse(yaml_before_value + value + "\n");
    ASSERT_FALSE(parsed.ok()) << key << ": " << value << " was accepted";
    EXPECT_NE(parsed.message().find(key + ": "), std::string::npos) << parsed.message();
  }
}

// Field by field, as a listener's limits section gives them.
inline void ExpectSameListenerLimits(const transport::Http2ServerOptions& a, const transport::Http2ServerOptions& b) {
  EXPECT_EQ(a.max_concurrent_streams, b.max_concurrent_streams);
  EXPECT_EQ(a.initial_stream_window, b.initial_stream_window);
  EXPECT_EQ(a.connection_window, b.connection_window);
  EXPECT_EQ(a.max_header_list_bytes, b.max_header_list_bytes);
  EXPECT_EQ(a.max_request_body_bytes, b.max_request_body_bytes);
  EXPECT_EQ(a.handshake_timeout, b.handshake_timeout);
  EXPECT_EQ(a.idle_timeout, b.idle_timeout);
  EXPECT_EQ(a.max_connections, b.max_connections);
  EXPECT_EQ(a.max_connections_per_source, b.max_connections_per_source);
  EXPECT_EQ(a.request_timeout, b.request_timeout);
  EXPECT_EQ(a.max_connection_request_bytes, b.max_connection_request_bytes);
  EXPECT_EQ(a.max_stream_unsent_bytes, b.max_stream_unsent_bytes);
  EXPECT_EQ(a.max_connection_unsent_bytes, b.max_connection_unsent_bytes);
  EXPECT_EQ(a.max_source_request_bytes, b.max_source_request_bytes);
  EXPECT_EQ(a.max_source_unsent_bytes, b.max_source_unsent_bytes);
  EXPECT_EQ(a.premature_resets_per_second, b.premature_resets_per_second);
  EXPECT_EQ(a.premature_reset_burst, b.premature_reset_burst);
}

}  // namespace sigil::testing
