// serverd's config file, read as `serverd run -config` reads it: named without an extension,
// so that its text chooses the language and both YAML and SPIRE's HCL (translated) are reached.
#include "core/registration_entry.h"
#include "serverd/server_config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto config = sigil::serverd::ParseServerConfig(sigil::fuzz::AsText(data, size), "server");
  if (!config.ok()) {
    FUZZ_CHECK(config.status().code() == sigil::Code::kInvalidArgument);
    return 0;
  }
  // What is accepted is in bounds: the TTLs a CA and its SVIDs are made with.
  FUZZ_CHECK(config->default_x509_svid_ttl < config->ca_ttl);
  FUZZ_CHECK(config->agent_ttl < config->ca_ttl);
  FUZZ_CHECK(config->default_jwt_svid_ttl <= sigil::kMaxSvidTtl);
  return 0;
}
