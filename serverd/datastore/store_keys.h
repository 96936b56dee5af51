// What both stores compute the same way from what they are given, so that a database written by
// one serverd reads the same in another: an entry's uniqueness key over its selectors, the hash a
// join token is kept as, and a list bound as one JSON parameter.
#pragma once

#include <string>
#include <vector>

#include "core/selector.h"

namespace sigil::serverd {

// The uniqueness key of an entry's selectors: sorted, so order in the request does not matter.
std::string EntrySelectorKey(const std::vector<Selector>& selectors);

// Join tokens are kept only as their SHA-256, in hex.
std::string JoinTokenHash(const std::string& token);

// A list bound as one parameter (SQLite's json_each, PostgreSQL's jsonb_array_elements_text):
// an IN list of N placeholders would need a statement per length.
std::string JsonArray(const std::vector<std::string>& values);

}  // namespace sigil::serverd
