// SPIRE's server.conf and agent.conf, as HCL (core/hcl). What is accepted is a mapping no
// deeper than the limit, and is walked whole and emitted as YAML, as a config reader would
// walk it.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <string>

#include "core/hcl.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

// The number of container levels below `node`.
int Depth(const YAML::Node& node) {
  int deepest = 0;
  if (node.IsMap()) {
    for (const auto& item : node) {
      FUZZ_CHECK(item.first.IsScalar());
      deepest = std::max(deepest, 1 + Depth(item.second));
    }
    return std::max(deepest, 1);
  }
  if (node.IsSequence()) {
    for (const auto& item : node) deepest = std::max(deepest, 1 + Depth(item));
    return std::max(deepest, 1);
  }
  FUZZ_CHECK(node.IsScalar() || node.IsNull());
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto root = sigil::ParseHcl(sigil::fuzz::AsText(data, size), "fuzz.conf");
  if (!root.ok()) {
    FUZZ_CHECK(root.status().code() == sigil::Code::kInvalidArgument);
    FUZZ_CHECK(root.status().message().rfind("fuzz.conf:", 0) == 0);
    return 0;
  }
  FUZZ_CHECK(root->IsMap());
  // The root's own level is not counted by the limit.
  FUZZ_CHECK(Depth(*root) <= sigil::kHclMaxDepth + 1);
  const std::string yaml = YAML::Dump(*root);
  FUZZ_CHECK(root->size() == 0 || !yaml.empty());
  return 0;
}
