#include "core/cli_args.h"

#include <gtest/gtest.h>

namespace sigil {
namespace {

TEST(CliArgsTest, GoStyleFlagsGetTwoDashes) {
  EXPECT_EQ(NormalizeGoStyleFlags({"entry", "create", "-spiffeID", "spiffe://example.org/a", "-ttl=60", "-x509SVIDTTL",
                                   "-5", "-", "--output", "json", "-n", "a-b"}),
            (std::vector<std::string>{"entry", "create", "--spiffeID", "spiffe://example.org/a", "--ttl=60",
                                      "--x509SVIDTTL", "-5", "-", "--output", "json", "-n", "a-b"}));
}

}  // namespace
}  // namespace sigil
