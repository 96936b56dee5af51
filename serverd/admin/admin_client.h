// How the `serverd` commands reach a running server: one call per admin API method, JSON in
// and out. The socket client lives with the transport; tests may answer in-process.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "core/status.h"

namespace sigil::serverd {

class AdminClient {
 public:
  virtual ~AdminClient() = default;
  // The method's response body, or the error the server answered (or why it was not reached).
  virtual Result<nlohmann::json> Call(const std::string& path, const nlohmann::json& body) = 0;
};

}  // namespace sigil::serverd
