// ASCII case folding, for the names protocols compare without case (HTTP header fields, DNS
// names, URL schemes). Not for text in general: other bytes pass unchanged.
#pragma once

#include <string>
#include <string_view>

namespace sigil {

inline std::string AsciiLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace sigil
