// agentd's config file, read as `agentd run -config` reads it: named without an extension,
// so that its text chooses the language and both YAML and SPIRE's HCL (translated) are reached.
#include "agentd/agent_config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto config = sigil::agentd::ParseAgentConfig(sigil::fuzz::AsText(data, size), "agent");
  if (!config.ok()) {
    FUZZ_CHECK(config.status().code() == sigil::Code::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(!config->server_addresses.empty());
  FUZZ_CHECK(config->socket_path.is_absolute());
  return 0;
}
