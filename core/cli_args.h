// SPIRE's commands take Go-style flags with one dash (-spiffeID x, -ttl=60); CLI11 reads long
// options with two. Both daemons' commands pass their arguments through here first, so
// operators type what they type for SPIRE, and `--spiffeID` works as well.
#pragma once

#include <string>
#include <vector>

namespace sigil {

// "-name" and "-name=value" become "--name" and "--name=value" when `name` is two or more
// characters and does not start with a digit; everything else (values, "-5", "-", "--x") is
// left alone.
std::vector<std::string> NormalizeGoStyleFlags(std::vector<std::string> args);

}  // namespace sigil
