// The agent SVID agentd keeps in its data_dir, rewritten by tests the way crashes and earlier
// versions left it.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "core/openssl_util.h"
#include "hw/soft_key_store.h"
#include "tests/support/process.h"

namespace sigil::agentd::testing {

inline constexpr char kIdentityFile[] = "agent_identity.pem";
inline constexpr char kOldChainFile[] = "agent_svid.pem";
inline constexpr char kOldKeyFile[] = "agent_svid.key";

// Rewrites the agent's saved SVID in the two files of earlier versions (agent_svid.pem, the
// chain; agent_svid.key, the key). With `mismatched`, the key is a fresh one: the state an
// earlier version left when killed after renaming a renewed key and before renaming its SVID.
inline void WriteOldLayout(const std::filesystem::path& data_dir, bool mismatched) {
  std::string chain = sigil::testing::ReadFile(data_dir / kOldChainFile);
  std::string key = sigil::testing::ReadFile(data_dir / kOldKeyFile);
  if (std::filesystem::exists(data_dir / kIdentityFile)) {
    const std::string both = sigil::testing::ReadFile(data_dir / kIdentityFile);
    const size_t key_at = both.find("-----BEGIN PRIVATE KEY-----");
    ASSERT_NE(key_at, std::string::npos);
    chain = both.substr(0, key_at);
    key = both.substr(key_at);
    std::filesystem::remove(data_dir / kIdentityFile);
  }
  ASSERT_NE(chain.find("CERTIFICATE"), std::string::npos);
  if (mismatched) {
    auto fresh = hw::GenerateSoftKey(KeyType::kEcP256);
    ASSERT_TRUE(fresh.ok());
    key = *PrivateKeyToPkcs8Pem(fresh->get());
  }
  sigil::testing::WriteFile(data_dir / kOldChainFile, chain);
  sigil::testing::WriteFile(data_dir / kOldKeyFile, key);
  ASSERT_EQ(::chmod((data_dir / kOldKeyFile).c_str(), 0600), 0);
}

}  // namespace sigil::agentd::testing
