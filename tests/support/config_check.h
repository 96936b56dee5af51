// Config values a daemon must refuse at start, each with a message naming its key.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/status.h"

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

}  // namespace sigil::testing
